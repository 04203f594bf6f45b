"""`python -m common.demo`: serve the Gradio demo (see common.demo)."""

from common.demo import demo_main

raise SystemExit(demo_main())

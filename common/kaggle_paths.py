"""Kaggle's fixed folders, named once: attached inputs (read-only) and the session's outputs.

Kaggle has moved datasets within /kaggle/input before (/kaggle/input/<slug>/ became
/kaggle/input/datasets/<owner>/<slug>/), so code searches below KAGGLE_INPUT by file name instead
of assuming a layout. Standard library only: the builders use it too.
"""

from __future__ import annotations

from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")

"""`python -m common evaluate`: not written yet."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Placeholder: this command group is added by its issue."""

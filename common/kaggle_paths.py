"""Kaggle's fixed folders, named once: attached inputs (read-only) and the session's outputs.

Kaggle has moved datasets within /kaggle/input before (/kaggle/input/<slug>/ became
/kaggle/input/datasets/<owner>/<slug>/), so code searches below KAGGLE_INPUT by file name instead
of assuming a layout (`kaggle_input_files`). Standard library only: the builders use it too.
"""

from __future__ import annotations

from pathlib import Path

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def has_kaggle_input() -> bool:
    """Whether this session has Kaggle's input folder (a Kaggle notebook)."""
    return KAGGLE_INPUT.is_dir()


def kaggle_input_files(pattern: str, *, recursive: bool = True) -> list[Path]:
    """The paths matching `pattern` anywhere below KAGGLE_INPUT (directly in it, when not
    `recursive`), sorted; none off Kaggle."""
    if not has_kaggle_input():
        return []
    return sorted(KAGGLE_INPUT.rglob(pattern) if recursive else KAGGLE_INPUT.glob(pattern))

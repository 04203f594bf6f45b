"""Shared fixtures: the real audio in ../shared/data (skipped cleanly when absent) and tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """`$SHARED_DATA` or ../shared/data next to the repository, if it exists."""
    candidates = [os.environ.get("SHARED_DATA"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "speech").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real audio not found: set SHARED_DATA or place it at ../shared/data")
    return path


@pytest.fixture(scope="session")
def speech_clip(shared_data: Path) -> np.ndarray:
    """A few seconds of real speech at 16 kHz."""
    from common.audio import load_audio

    return load_audio(shared_data / "speech" / "ljspeech" / "LJ001-0001.flac")

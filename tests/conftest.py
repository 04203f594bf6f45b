"""Shared fixtures: the real audio in ../shared/data (skipped cleanly when absent) and tmp dirs;
and `run_python` / `run_common`, the one way tests run a command as the user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # small models on a shared machine: speed only
COMMAND_TIMEOUT_S = 600


def run_python(
    *args: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = COMMAND_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` as a user types it (`run_python("-m", "scripts.bench", ...)`), with this
    repository importable from any `cwd`, text output captured. `env` adds to the environment;
    `prefix` runs it under another command (e.g. setpriv as another user)."""
    return subprocess.run(
        [*prefix, sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def run_common(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`python -m common ARGS` (see `run_python` for the keyword arguments)."""
    return run_python("-m", "common", *args, **kwargs)


def code_notebook(path: Path, *sources: str) -> Path:
    """A Python notebook of these code cells, written to `path` (for the notebook runners)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


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

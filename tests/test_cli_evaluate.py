"""`python -m common evaluate` as a user types it: an --out in the way is one line, before scoring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def evaluate(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "common", "evaluate", *args, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


@pytest.mark.parametrize("below", ["", "sub"])
def test_out_that_is_an_existing_file_is_one_line(shared_data, tmp_path, below):
    existing = tmp_path / "existing.txt"
    existing.write_text("mine")
    out = existing / below if below else existing
    proc = evaluate("--pairs", str(shared_data / "pairs" / "pesq_babble0db"), "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert f"{existing} is a file" in error
    assert existing.read_text() == "mine"

"""`python -m common evaluate` as a user types it: an --out in the way is one line, before scoring."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import run_common


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return run_common("evaluate", *args, "--no-progress")


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


def test_an_earlier_evaluation_is_kept_unless_overwrite(shared_data, tmp_path):
    # --no-dnsmos: this test is about the results folder; DNSMOS has its own (tests/test_dnsmos.py).
    pairs = (str(shared_data / "pairs" / "pesq_babble0db"), "--no-dnsmos")
    out = tmp_path / "eval"
    assert evaluate("--pairs", *pairs, "--out", str(out)).returncode == 0
    earlier = json.loads((out / "eval_summary.json").read_text())
    (out / "eval_summary.json").write_text("{}")  # the user's own edit of the results
    proc = evaluate("--pairs", *pairs, "--out", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "eval_summary.json").read_text() == "{}"  # kept as it was
    assert evaluate("--pairs", *pairs, "--out", str(out), "--overwrite").returncode == 0
    again = json.loads((out / "eval_summary.json").read_text())  # replaced: same pairs again
    assert earlier["noisy"]  # a noisy-only evaluation: the noisy group is what it scores
    for group in [g for g in ("noisy", "enhanced") if g in earlier]:
        for metric, stats in earlier[group].items():
            # Parallel workers may sum in another order: equal to float rounding, not bytes.
            assert again[group][metric]["mean"] == pytest.approx(stats["mean"], rel=1e-6)

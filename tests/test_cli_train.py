"""`python -m common train` as a user types it: an earlier run in --out is kept unless the user
says --resume or --overwrite, and bad settings are one line (exit 2), never a traceback, also
when the mistake surfaces inside a data-parallel worker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import run_common

from common.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint

# The smallest real run: lite at width 16, one block, 1-s crops, 4 per batch, no loader workers.
TINY = ["--batch-size", "4", "--segment-seconds", "1", "--workers", "0", "--no-progress"]
TINY += ["--model-config", "width=16", "--model-config", "n_blocks=1"]


def train(out: Path, *extra: str, data: str = "synthetic") -> subprocess.CompletedProcess:
    return run_common("train", "--model", "lite", "--data", data, "--out", str(out), *extra)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def fake_earlier_run(out: Path) -> dict[str, bytes]:
    """An earlier run's files (step 999), as bytes to compare with afterwards."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model_name": "lite",
        "model_config": {},
        "stft": {},
        "model": {"w": torch.zeros(1)},
        "step": 999,
    }
    for name in ("last.pt", "best.pt", "epoch_005.pt"):
        save_checkpoint(out / name, state)
    (out / "history.json").write_text(json.dumps({"step": 999}))
    (out / "summary.json").write_text(json.dumps({"step": 999}))
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_an_earlier_run_is_refused_without_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    before = fake_earlier_run(out)
    error = one_line_error(train(out, *TINY, "--max-steps", "1"))
    assert f"--resume {out / 'last.pt'}" in error and "--overwrite" in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_overwrite_keeps_the_earlier_run_until_the_new_one_starts(tmp_path):
    out = tmp_path / "run"
    before = fake_earlier_run(out)
    proc = train(out, *TINY, "--overwrite", data=str(tmp_path / "missing"))
    assert "missing" in one_line_error(proc)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow  # one short CLI training (~15 s)
def test_overwrite_replaces_the_whole_earlier_run(tmp_path):
    out = tmp_path / "run"
    fake_earlier_run(out)
    # A budget stop mid-epoch writes best.pt only when there is none: with an old best.pt left
    # in place this run would have ended as a mix of old and new files.
    proc = train(out, *TINY, "--overwrite", "--max-steps", "1")
    assert proc.returncode == 0, proc.stderr
    assert "removed the earlier run" in proc.stdout
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert files == ["best.pt", "history.json", "last.pt"]  # no epoch_005.pt, no summary.json
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(out / name)["step"] == 1
    assert json.loads((out / "history.json").read_text())["step"] == 1


def test_overwrite_and_resume_from_the_same_folder_contradict(tmp_path):
    out = tmp_path / "run"
    before = fake_earlier_run(out)
    proc = train(out, *TINY, "--overwrite", "--resume", str(out / "last.pt"))
    assert "--overwrite" in one_line_error(proc)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_out_that_is_a_file_is_one_line(tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    assert "is a file" in one_line_error(train(out, *TINY))
    assert out.read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "-1"], "--workers"),
        (["--model-config", "width=abc"], "width='abc'"),
        (["--model-config", "width=7"], "width"),  # builds only with width a multiple of heads
        (["--epochs", "many"], "--epochs"),
    ],
)
def test_bad_settings_are_one_line(tmp_path, args, needle):
    proc = train(tmp_path / "run", *TINY, *args)
    assert needle in one_line_error(proc)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.slow  # three spawned workers (~15 s)
def test_a_user_error_in_a_data_parallel_worker_is_one_line(tmp_path):
    # The batch must split evenly over the processes; the trainer in each worker says so.
    proc = train(tmp_path / "run", *TINY, "--nproc", "3", "--batch-size", "4", "--max-steps", "1")
    error = one_line_error(proc)
    assert "batch_size=4" in error and "3 processes" in error

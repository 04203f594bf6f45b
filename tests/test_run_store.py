"""Every file of a run is whole or absent, whenever the run is killed (common.run_store through
common.atomic), and the run continues from what the kill left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_STFT, ToyLoss, ToySpeechSet, make_tiny

from common.atomic import write_atomically
from common.checkpoint import load_checkpoint
from common.config import TrainConfig
from common.run_store import RUN_FILE_PATTERNS, RunStore, run_files
from common.train import Trainer

TESTS = Path(__file__).resolve().parent
EPOCHS = 3
# Each epoch end writes best.pt (the toy task improves every epoch), epoch_NNN.pt, last.pt, then
# history.json: the kills below land in all four, at each stage of common.atomic's writer.
TRAIN = dict(epochs=EPOCHS, batch_size=4, num_workers=0, progress=False, checkpoint_every=1)
KILLED = 137

RUN_TOY = textwrap.dedent(
    """
    import json, os, sys
    import torch
    sys.path.insert(0, {tests!r})
    import common.atomic as atomic
    from train_helpers import TINY_STFT, ToyLoss, ToySpeechSet, make_tiny
    from common.config import TrainConfig
    from common.train import Trainer

    out, stage, nth, cfg = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    # The threads of the test's own runs: float sums, so the same histories, bit for bit.
    torch.set_num_threads(int(sys.argv[5]))
    seen = {{"n": 0}}

    def fault(at, path):
        if at == stage:
            seen["n"] += 1
            if seen["n"] == nth:
                os._exit({killed})  # as SIGKILL: no handler, no finally, no flush

    atomic._fault = fault
    model = make_tiny(0, dropout=0.2)
    data = ToySpeechSet(24), ToySpeechSet(8, train=False)
    Trainer(model, ToyLoss(), *data, TrainConfig(**cfg), TINY_STFT, out).fit()
    """
).format(tests=str(TESTS), killed=KILLED)


def _toy(out: Path, resume: Path | None = None, **cfg) -> Trainer:
    data = ToySpeechSet(24), ToySpeechSet(8, train=False)
    config = TrainConfig(**{**TRAIN, **cfg})
    return Trainer(make_tiny(0, dropout=0.2), ToyLoss(), *data, config, TINY_STFT, out, resume_from=resume)  # fmt: skip


def _start(out: Path, stage: str = "never", nth: int = 0, **cfg) -> subprocess.Popen:
    config, threads = json.dumps({**TRAIN, **cfg}), str(torch.get_num_threads())
    args = [sys.executable, "-c", RUN_TOY, str(out), stage, str(nth), config, threads]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _assert_whole_or_absent(out: Path) -> list[str]:
    """Every visible file of the run reads whole; anything else is a hidden temporary."""
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert set(visible) == {p.name for p in run_files(out)}, visible
    for name in visible:
        if name.endswith(".pt"):
            load_checkpoint(out / name)  # raises on a partial or foreign file
        else:
            json.loads((out / name).read_text())
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all(n.endswith(".tmp") for n in hidden), hidden
    return visible


def _timeless(summary: dict) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "elapsed_seconds"} for e in summary["history"]]


@pytest.mark.parametrize(
    ("stage", "nth"),
    # best.pt half written; epoch_001.pt synced, not renamed; last.pt of epoch 1 just renamed;
    # history.json of epoch 2 half written; last.pt of epoch 2 synced; epoch_003.pt renamed.
    [("written", 1), ("synced", 2), ("published", 3), ("written", 8), ("synced", 7), ("published", 10)],
)  # fmt: skip
def test_a_run_killed_at_any_point_of_a_write_leaves_whole_files_and_resumes(tmp_path, stage, nth):
    run = tmp_path / "run"
    proc = _start(run, stage, nth)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == KILLED, err
    before = _assert_whole_or_absent(run)
    full = _toy(tmp_path / "full")
    expected = full.fit()
    if "last.pt" not in before:  # killed before the first save was complete: start again
        return
    with warnings.catch_warnings():  # "best.pt is one save ahead": the kill between two files
        warnings.simplefilter("ignore")
        resumed = _toy(run, resume=run / "last.pt")
    summary = resumed.fit()
    assert _timeless(summary) == _timeless(expected)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # The next writes removed the killed writer's temporaries.
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []
    _assert_whole_or_absent(run)


def test_sigkill_at_random_moments_never_leaves_a_partial_file(tmp_path):
    # Real kills, at moments the run does not choose: each lands wherever the run then is.
    for i, delay in enumerate((0.0, 0.3, 0.7)):
        run = tmp_path / f"run{i}"
        proc = _start(run, epochs=1000)
        deadline = time.time() + 300
        while not (run / "history.json").exists() and proc.poll() is None:
            assert time.time() < deadline, "no history.json within 5 minutes"
            time.sleep(0.05)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert "last.pt" in _assert_whole_or_absent(run)
        load_checkpoint(run / "last.pt")


def test_the_store_writes_json_whole_and_only_in_the_writing_process(tmp_path):
    store = RunStore(tmp_path / "run")
    store.create()
    path = store.write_json("summary.json", {"pesq": float("nan"), "steps": 3})
    assert json.loads(path.read_text()) == {"pesq": None, "steps": 3}
    reader = RunStore(tmp_path / "other", writer=False)
    reader.create()
    reader.write_json("history.json", {"a": 1})
    assert not (tmp_path / "other").exists()
    assert set(RUN_FILE_PATTERNS) >= {"last.pt", "best.pt", "history.json", "summary.json"}


def test_no_overwrite_mode_keeps_an_existing_file(tmp_path):
    target = tmp_path / "out.wav"
    assert write_atomically(target, lambda f: f.write(b"first"), overwrite=False)
    assert not write_atomically(target, lambda f: f.write(b"second"), overwrite=False)
    assert target.read_bytes() == b"first"
    assert write_atomically(target, lambda f: f.write(b"third"))
    assert target.read_bytes() == b"third"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]

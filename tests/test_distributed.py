"""Data-parallel training on CPU (gloo, 2 forked processes) against single-process runs."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.multiprocessing as torch_mp
from train_helpers import TINY_STFT, ToyLoss, ToySpeechSet, make_tiny

import common.run_store as store_mod
from common.checkpoint import load_checkpoint
from common.config import TrainConfig
from common.distributed import dist_info, launch_processes
from common.train import Trainer

CFG = dict(epochs=3, batch_size=4, num_workers=0, progress=False, warmup_epochs=1.0)


def _run(out, resume=None, loss=None, val_items=5, **cfg) -> Trainer:
    # No dropout: per-rank dropout masks cannot match a single process's anyway.
    trainer = Trainer(
        make_tiny(0),
        loss or ToyLoss(),
        ToySpeechSet(24),
        ToySpeechSet(val_items, train=False),
        TrainConfig(**{**CFG, **cfg}),
        TINY_STFT,
        out,
        resume_from=resume,
    )
    trainer.fit()
    return trainer


def _weights(path) -> dict:
    return load_checkpoint(path)["model"]


def _assert_close(a: dict, b: dict) -> None:
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_two_processes_match_one_process_and_write_one_checkpoint_set(tmp_path, monkeypatch):
    # One validation item: rank 1's shard is empty, the case that once deadlocked (DDP's
    # forward broadcasts buffers, so validation must not run through the wrapper).
    single = _run(tmp_path / "one", max_steps=9, val_items=1)

    # Forked workers inherit this patch: it records which rank writes each file.
    log = tmp_path / "writes.log"
    real_save = store_mod.save_checkpoint

    def logged_save(path, state):
        with open(log, "a") as f:
            f.write(f"{dist_info().rank} {path.name}\n")
        return real_save(path, state)

    monkeypatch.setattr(store_mod, "save_checkpoint", logged_save)
    launch_processes(
        _run, 2, (tmp_path / "two",), {"max_steps": 9, "val_items": 1}, timeout_minutes=0.5
    )

    two = load_checkpoint(tmp_path / "two" / "last.pt")
    assert two["train_config"]["world_size"] == 2
    assert two["train_config"]["per_process_batch_size"] == 2
    assert two["train_config"]["effective_batch_size"] == 4
    assert two["step"] == single.state.step == 9
    _assert_close(two["model"], single.model.state_dict())
    # Validation is summed over ranks: same items, same numbers as one process.
    one_hist = load_checkpoint(tmp_path / "one" / "last.pt")["history"]
    for h1, h2 in zip(one_hist, two["history"]):
        assert h2["val_items"] == h1["val_items"] == 1
        assert h2["val_loss"] == pytest.approx(h1["val_loss"], rel=1e-5)
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-5)

    writers = {line.split()[0] for line in log.read_text().splitlines()}
    assert writers == {"0"}
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )


def test_two_processes_resume_from_a_single_process_checkpoint(tmp_path):
    full = _run(tmp_path / "full", max_steps=15)
    _run(tmp_path / "split", max_steps=8)
    launch_processes(
        _run,
        2,
        (tmp_path / "split",),
        kwargs={"resume": tmp_path / "split" / "last.pt", "max_steps": 15},
    )
    resumed = load_checkpoint(tmp_path / "split" / "last.pt")
    assert resumed["step"] == 15 and resumed["train_config"]["world_size"] == 2
    _assert_close(resumed["model"], full.model.state_dict())


class _DieOnRank1(ToyLoss):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        if dist_info().rank == 1 and self.calls == 10:
            os._exit(3)  # as abrupt as a kill: no cleanup, no goodbye to the peer
        return super().__call__(*args)


def test_killed_worker_stops_the_peer_and_leaves_whole_checkpoints(tmp_path):
    started = time.monotonic()
    with pytest.raises(torch_mp.ProcessExitedException):
        launch_processes(_run, 2, (tmp_path,), kwargs={"loss": _DieOnRank1(), "epochs": 50})
    assert time.monotonic() - started < 60  # the surviving rank did not hang
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 6  # written at the epoch end

"""Checkpoints: atomic writes (crash and kill mid-write), weights_only loading, RNG round trip."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import ToySpeechSet

import common.checkpoint as ckpt_mod
from common.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    load_checkpoint,
    plain,
    restore_rng_state,
    save_checkpoint,
)
from common.errors import UserError
from common.losses import EnhancementLoss
from common.models import build_model
from common.recipes import load_recipe
from common.train import Trainer
from common.train_state import EpochTotals, TrainState

# The `lite` recipe's checkpoint, shipped before lite-v2.pt (common.checkpoint.SHIPPED_CHECKPOINT).
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "lite-dev.pt"


def _state(value: float) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": "tiny",
        "model_config": {"hidden": 4},
        "stft": {"n_fft": 64},
        "model": {"w": torch.full((256, 256), value)},
    }


def _half_write_then(action):
    real_save = torch.save

    def fake_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half the bytes reached the disk...
        action()  # ...then the crash

    return fake_save


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))

    def crash():
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", _half_write_then(crash))
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((256, 256), 1.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_process_killed_mid_write_keeps_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", _state(1.0))

    def child():
        torch.set_num_threads(1)  # a forked child must not start a new OpenMP pool
        torch.save = _half_write_then(lambda: os._exit(9))  # like SIGKILL: no cleanup runs
        save_checkpoint(path, _state(2.0))

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 9
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((256, 256), 1.0))
    assert len(list(tmp_path.glob(".last.pt.*.tmp"))) == 1  # the dead writer's leftover
    save_checkpoint(path, _state(3.0))  # the next save tidies it away
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((256, 256), 3.0))


def test_plain_types_load_with_weights_only(tmp_path):
    state = _state(0.0)
    state["history"] = plain([{"loss": np.float32(0.5), "n": np.int64(3), "shape": (1, 2)}])
    save_checkpoint(tmp_path / "a.pt", state)
    loaded = torch.load(tmp_path / "a.pt", weights_only=True)
    assert loaded["history"] == [{"loss": 0.5, "n": 3, "shape": [1, 2]}]
    assert type(loaded["history"][0]["loss"]) is float


def test_rng_state_round_trip(tmp_path):
    save_checkpoint(tmp_path / "r.pt", {**_state(0.0), "rng": capture_rng_state()})
    first = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    again = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    assert first == again


def test_foreign_and_broken_files_are_refused_in_one_line(tmp_path):
    bare = tmp_path / "transformer_best.pth"  # the old notebooks saved bare state dicts
    torch.save({"w": torch.zeros(2)}, bare)
    broken = tmp_path / "broken.pt"
    save_checkpoint(broken, _state(1.0))
    broken.write_bytes(broken.read_bytes()[:1000])
    for path, match in [
        (bare, "not a checkpoint written by"),
        (broken, "not a readable checkpoint"),
        (tmp_path / "missing.pt", "not found"),
    ]:
        with pytest.raises(UserError, match=match) as err:
            load_checkpoint(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_train_state_round_trips_through_a_checkpoint(tmp_path):
    state = TrainState(3, 8, EpochTotals(1.5, 2, {"mag": 0.5}), 20, 0.25, 2, 1, 9.5, [{"epoch": 1}])
    save_checkpoint(tmp_path / "s.pt", {**_state(1.0), **plain(dataclasses.asdict(state))})
    assert TrainState.from_checkpoint(load_checkpoint(tmp_path / "s.pt")) == state
    # lite-dev.pt (written before TrainState existed) has the same keys and values.
    shipped = load_checkpoint(SHIPPED)
    saved = dataclasses.asdict(TrainState.from_checkpoint(shipped))
    assert saved == {key: shipped[key] for key in saved}


def test_the_shipped_checkpoint_resumes(tmp_path):
    cfg = load_recipe("lite")
    shipped = load_checkpoint(SHIPPED)
    train = dataclasses.replace(
        cfg.train,
        epochs=shipped["epoch"] + 1,
        batch_size=2,
        max_steps=shipped["step"] + 1,
        max_minutes=None,
        num_workers=0,
        progress=False,
    )
    trainer = Trainer(
        build_model(cfg.model.name, n_freq=cfg.stft.n_freq, **cfg.model.settings),
        EnhancementLoss(cfg.loss, cfg.stft),
        ToySpeechSet(4, length=4096),
        None,
        train,
        cfg.stft,
        tmp_path,
        resume_from=SHIPPED,
    )
    assert trainer.state == TrainState.from_checkpoint(shipped)
    summary = trainer.fit()
    assert (summary["step"], summary["stop_reason"]) == (shipped["step"] + 1, "max_steps")
    assert load_checkpoint(tmp_path / "last.pt")["history"][:-1] == shipped["history"]


def test_one_shipped_checkpoint_for_the_tools_and_the_makefile():
    import re

    from common.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint

    repo = Path(__file__).resolve().parents[1]
    makefile = (repo / "Makefile").read_text()
    assert re.search(r"^CKPT \?= (\S+)$", makefile, re.M).group(1) == SHIPPED_CHECKPOINT.as_posix()
    assert "checkpoints/" not in makefile.replace("CKPT ?= checkpoints/", "")  # no second copy
    assert load_checkpoint(repo / SHIPPED_CHECKPOINT)["model_name"] == "lite"

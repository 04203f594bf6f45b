"""The notebook's time budget counts from its first cell, and a Kaggle notebook that would train
on the CPU stops in one line (GPU detection faked)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from common import experiment, training_steps
from common.budget import NOTEBOOK_STARTED_ENV, SessionBudget, notebook_started_at
from common.config import EvalConfig, RunConfig
from common.env import EnvInfo, GpuInfo
from common.errors import UserError
from common.experiment import Session, setup_environment
from common.recipes import apply_overrides
from common.run import TrainResult


def config(**overrides) -> RunConfig:
    return apply_overrides(RunConfig(), {k.replace("__", "."): v for k, v in overrides.items()})


def kaggle_env(gpus: list[GpuInfo]) -> EnvInfo:
    return EnvInfo("3.12", "2.x", "12.4", ["sm_75", "sm_80"], gpus, on_kaggle=True)


P100 = GpuInfo(0, "Tesla P100-PCIE-16GB", (6, 0), 16.0, False)
T4 = GpuInfo(0, "Tesla T4", (7, 5), 15.0, True)


def test_the_budget_counts_from_the_notebooks_first_cell(monkeypatch):
    started = time.time() - 600  # the first cell ran 10 minutes ago (installs, extraction, ...)
    monkeypatch.setenv(NOTEBOOK_STARTED_ENV, repr(started))
    assert notebook_started_at() == started
    budget = SessionBudget.for_notebook(limit_minutes=60)
    assert 49.9 < budget.remaining_s() / 60 < 50.0
    # Training gets what is left after the evaluation's reserve, not max_minutes from now.
    assert 39.9 < budget.training_minutes(reserve_minutes=10) < 40.0
    late = SessionBudget(time.time() - 58 * 60, limit_minutes=60)
    with pytest.raises(UserError, match="max_minutes=60: .* no time to train") as info:
        late.training_minutes(reserve_minutes=10)
    assert "\n" not in str(info.value)


def test_without_the_marker_the_kernel_process_start_is_used(monkeypatch):
    monkeypatch.delenv(NOTEBOOK_STARTED_ENV, raising=False)
    started = notebook_started_at()
    assert started <= time.time() and time.time() - started < 24 * 3600


def rest(env, session) -> tuple:
    return experiment.RunData(None, None, []), env, session


def test_the_notebook_parameters_set_the_training_budget(monkeypatch, tmp_path):
    monkeypatch.setenv(NOTEBOOK_STARTED_ENV, repr(time.time() - 30 * 60))
    monkeypatch.setattr(experiment, "describe_environment", lambda: kaggle_env([T4]))
    seen = {}

    def fake_train(cfg, data, out, resume, nproc, model=None):
        seen["minutes"], seen["clock"] = cfg.train.max_minutes, cfg.train.budget_clock
        return TrainResult({"stop_reason": "max_minutes"}, model, out / "best.pt", out / "last.pt")

    monkeypatch.setattr(training_steps, "train", fake_train)
    cfg = config(train__device="cpu")
    session = Session("lite", output_dir=str(tmp_path), max_minutes=100)
    env = setup_environment(cfg, session)
    ran, _ = training_steps.run_training(cfg, experiment.RunData(None, None, []), env, session)
    # 100 - 30 already gone - 2 (2% kept for the evaluation)
    assert 67.9 < seen["minutes"] <= 68.0 and ran.train.max_minutes == seen["minutes"]
    # A recipe's own, shorter budget is kept.
    short = config(train__device="cpu", train__max_minutes=5)
    training_steps.run_training(short, experiment.RunData(None, None, []), env, session)
    assert seen["minutes"] == 5
    # A CPU-time budget is kept when it fits; when the session binds, its wall clock counts.
    cpu = dict(train__device="cpu", train__budget_clock="cpu", train__num_workers=0)
    training_steps.run_training(config(**cpu, train__max_minutes=5), *rest(env, session))
    assert (seen["minutes"], seen["clock"]) == (5, "cpu")
    training_steps.run_training(config(**cpu, train__max_minutes=120), *rest(env, session))
    assert 67.9 < seen["minutes"] <= 68.0 and seen["clock"] == "wall"


@pytest.mark.parametrize("gpus", [[P100], []], ids=["unsupported-gpu", "no-gpu"])
def test_training_on_kaggle_without_a_usable_gpu_stops_in_one_line(monkeypatch, gpus):
    monkeypatch.setattr(experiment, "describe_environment", lambda: kaggle_env(gpus))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # select_device's own warning about the P100
        with pytest.raises(UserError, match="GPU T4 x2.*'train.device': 'cpu'") as info:
            setup_environment(config(), Session("lite"))
    assert "\n" not in str(info.value)
    assert ("P100" in str(info.value)) == bool(gpus)


def test_the_cpu_is_used_on_kaggle_when_asked_for_or_only_to_evaluate(monkeypatch):
    monkeypatch.setattr(experiment, "describe_environment", lambda: kaggle_env([]))
    session = Session("lite")
    assert setup_environment(config(train__device="cpu"), session).device.type == "cpu"
    assert setup_environment(config(), session, training=False).device.type == "cpu"
    synthetic = config(data__source="synthetic")
    assert setup_environment(synthetic, session).device.type == "cpu"


def test_the_evaluation_stops_early_rather_than_run_past_the_session(monkeypatch):
    class SlowEnhancer:
        def enhance(self, wav, sr):
            time.sleep(0.05)
            return wav

    class Pairs:
        pairs = [type("P", (), {"name": f"p{i}"}) for i in range(50)]

        def __len__(self):
            return len(self.pairs)

        def __getitem__(self, i):
            import torch

            return torch.zeros(160), torch.zeros(160)

    monkeypatch.setattr(experiment, "load_enhancer", lambda ckpt, device: SlowEnhancer())
    monkeypatch.setattr(experiment, "PairedDataset", lambda *a, **k: Pairs())
    # 2 min 1 s left: the 2-minute finishing reserve leaves room for a few files only.
    budget = SessionBudget(time.time() - (60 - 2) * 60 + 1.0, limit_minutes=60)
    done = experiment.enhance_test_set("x.pt", [], EvalConfig(), None, budget)
    assert 1 <= len(done.items) < 50
    assert all(np.array_equal(item.enhanced, item.noisy) for item in done.items)
    everything = experiment.enhance_test_set("x.pt", [], EvalConfig(), None, None)
    assert len(everything.items) == 50

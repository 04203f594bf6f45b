"""Trainer behaviour: exact resume, budgets, early stopping, warmup, history and checkpoints."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from conftest import run_common
from train_helpers import TINY_STFT, ToyLoss, ToySpeechSet, make_tiny

import common.budget as budget_mod
from common.budget import TrainBudget
from common.checkpoint import load_checkpoint
from common.config import TrainConfig
from common.errors import UserError
from common.schedule import learning_rate
from common.train import Trainer


def _trainer(out, resume=None, model_seed=0, loss=None, **cfg) -> Trainer:
    base = dict(epochs=3, batch_size=4, num_workers=0, progress=False, warmup_epochs=1.0)
    base.update(cfg)
    return Trainer(
        make_tiny(model_seed, dropout=0.2),
        loss or ToyLoss(),
        ToySpeechSet(24),
        ToySpeechSet(8, train=False),
        TrainConfig(**base),
        TINY_STFT,
        out,
        resume_from=resume,
    )


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(("workers", "ema_decay"), [(0, 0.0), (2, 0.0), (0, 0.9)])
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, workers, ema_decay):
    # 6 steps per epoch: stopping at 8 is mid-epoch 2; 16 steps cross two epoch ends
    # (validation, plateau scheduler, best/last checkpoints) on both sides of the stop.
    ema = {"ema_decay": ema_decay}
    full = _trainer(tmp_path / "full", max_steps=16, num_workers=workers, **ema)
    full.fit()
    first = _trainer(tmp_path / "split", max_steps=8, num_workers=workers, **ema)
    summary = first.fit()
    assert summary["stop_reason"] == "max_steps" and summary["step"] == 8
    # A different initialisation proves the weights come from the checkpoint.
    resumed = _trainer(
        tmp_path / "split",
        resume=tmp_path / "split" / "last.pt",
        model_seed=123,
        max_steps=16,
        num_workers=workers,
        **ema,
    )
    resumed.fit()
    assert resumed.state.step == full.state.step == 16
    _assert_same_weights(full.model, resumed.model)
    _assert_same_weights(full.eval_model, resumed.eval_model)
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    full_losses = [h["val_loss"] for h in full.state.history if not h.get("partial")]
    resumed_losses = [h["val_loss"] for h in resumed.state.history if not h.get("partial")]
    assert resumed_losses == full_losses


def test_checkpoint_holds_everything_and_loads_weights_only(tmp_path):
    t = _trainer(tmp_path, epochs=2)
    t.fit()
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / name, weights_only=True)
        assert state["model_name"] == "tiny"
        assert state["model_config"] == {"n_freq": 33, "hidden": 16, "dropout": 0.2}
        assert state["stft"]["n_fft"] == 64 and state["stft"]["hop_length"] == 32
        assert state["train_config"]["effective_batch_size"] == 4
        assert state["loss_config"] == {"mag_weight": 1.0, "wav_weight": 1.0}
        for key in ("optimizer", "scheduler", "scaler", "rng", "history", "epoch", "step"):
            assert key in state
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_history_json_and_periodic_checkpoints(tmp_path):
    t = _trainer(tmp_path, epochs=4, checkpoint_every=2, patience=0)
    summary = t.fit()
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved == summary
    assert [h["epoch"] for h in saved["history"]] == [1, 2, 3, 4]
    assert saved["stop_reason"] == "epochs"
    for h in saved["history"]:
        assert math.isfinite(h["val_loss"]) and math.isfinite(h["val_si_sdr"])
        assert set(h["train_parts"]) == {"mag", "wav"}
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == [
        "best.pt",
        "epoch_002.pt",
        "epoch_004.pt",
        "last.pt",
    ]
    # The model learns on the toy task: validation SI-SDR rises above the noisy input's.
    assert saved["history"][-1]["val_si_sdr"] > saved["history"][0]["val_si_sdr_noisy"]


def test_time_budget_saves_and_stops(tmp_path):
    t = _trainer(tmp_path, epochs=1000, max_minutes=0.02)
    summary = t.fit()
    assert summary["stop_reason"] == "max_minutes"
    assert summary["epochs_done"] < 1000
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == summary["step"]


class _WorseningValLoss(ToyLoss):
    """Validation loss that rises every epoch (training unaffected): early stopping must fire."""

    def __init__(self):
        super().__init__()
        self.val_calls = 0

    def __call__(self, est_spec, clean_spec, est_wav, clean_wav):
        total, parts = super().__call__(est_spec, clean_spec, est_wav, clean_wav)
        if not torch.is_grad_enabled():
            self.val_calls += 1
            total = total.detach() * 0 + self.val_calls
        return total, parts


def test_early_stopping(tmp_path):
    t = _trainer(tmp_path, epochs=20, patience=2, loss=_WorseningValLoss())
    summary = t.fit()
    assert summary["stop_reason"] == "early_stopping"
    assert summary["epochs_done"] == 3 and summary["best_epoch"] == 1


def test_linear_warmup_then_full_lr(tmp_path):
    t = _trainer(tmp_path, epochs=2, max_steps=1, warmup_epochs=1.0)
    t.fit()
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 6)
    t = _trainer(tmp_path / "b", epochs=2, max_steps=7, warmup_epochs=1.0)
    t.fit()
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_cosine_schedule_decays_to_min_lr(tmp_path):
    t = _trainer(tmp_path, epochs=3, scheduler="cosine", warmup_epochs=0, min_lr=1e-5)
    t.fit()
    lrs = [h["lr"] for h in t.state.history]
    assert lrs[0] > lrs[1] > lrs[2] >= 1e-5


def test_cosine_fits_a_time_budget(tmp_path):
    # 1000 epochs would keep a step-sized cosine near its peak; under a 2 s budget the schedule
    # is fitted to the measured step rate and decays to the floor by the deadline.
    t = _trainer(
        tmp_path, epochs=1000, scheduler="cosine", warmup_epochs=0, min_lr=1e-5, max_minutes=2 / 60
    )
    t.fit()
    assert t.stop_reason == "max_minutes" and t.state.step > 40
    assert t.optimizer.param_groups[0]["lr"] < 0.15 * 1e-3


def test_the_learning_rate_is_a_function_of_the_step():
    cosine = TrainConfig(lr=1e-3, min_lr=1e-5, scheduler="cosine")
    lrs = [learning_rate(step, cosine, 4, 104, plateau_lr=0.0) for step in range(200)]
    assert lrs[:4] == pytest.approx([1e-3 / 4, 2e-3 / 4, 3e-3 / 4, 1e-3])  # linear warmup
    assert lrs[4] == pytest.approx(1e-3) and lrs[54] == pytest.approx((1e-3 + 1e-5) / 2)
    assert lrs[104] == lrs[199] == pytest.approx(1e-5)  # the floor at total_steps and after
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    # Plateau: the full lr when warmup ends, then whatever the scheduler has lowered it to.
    plateau = TrainConfig(lr=1e-3)
    assert learning_rate(2, plateau, 4, 0, plateau_lr=2e-4) == pytest.approx(3e-3 / 4)
    assert learning_rate(4, plateau, 4, 0, plateau_lr=2e-4) == 1e-3
    assert learning_rate(5, plateau, 4, 0, plateau_lr=2e-4) == 2e-4


def test_the_time_budget_fits_the_steps_to_the_deadline(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(budget_mod, "time", SimpleNamespace(monotonic=lambda: now[0]))
    budget = TrainBudget()
    budget.start(max_minutes=1.0, step=100)
    now[0] += 10
    assert budget.steps_by_deadline(110) is None  # too few steps timed to trust the rate
    now[0] += 10  # 20 steps in 20 s, 40 s left: 40 more steps, plus the one in progress
    assert budget.steps_by_deadline(120) == pytest.approx(161)
    budget.reserve_s = 10.0  # kept for validation and saving
    assert budget.steps_by_deadline(120) == pytest.approx(151) and not budget.out_of_time()
    now[0] += 30
    assert budget.out_of_time() and budget.elapsed_s() == pytest.approx(50)
    budget.start(max_minutes=None, step=0)
    assert budget.deadline is None and not budget.out_of_time()
    assert budget.steps_by_deadline(500) is None


def test_a_cpu_time_budget_counts_this_process_cpu_not_the_wall(monkeypatch):
    wall, cpu = [0.0], [0.0]
    fake = SimpleNamespace(monotonic=lambda: wall[0], process_time=lambda: cpu[0])
    monkeypatch.setattr(budget_mod, "time", fake)
    budget = TrainBudget(clock="cpu")
    budget.start(max_minutes=1.0, step=0)
    wall[0] += 100  # a busy machine: 100 s went by, but this process ran for 30 of them
    cpu[0] += 30
    assert budget.elapsed_s() == 30 and not budget.out_of_time()
    cpu[0] += 30
    assert budget.out_of_time()
    with pytest.raises(UserError, match="num_workers=2: with train.budget_clock='cpu'"):
        TrainConfig(budget_clock="cpu", num_workers=2)
    with pytest.raises(UserError, match="budget_clock='gpu': use one of"):
        TrainConfig(budget_clock="gpu")


def test_the_optimizer_is_a_setting_stored_and_checked_on_resume(tmp_path):
    with pytest.raises(UserError, match="optimizer='sgd': use one of adam, adamw"):
        TrainConfig(optimizer="sgd")
    t = _trainer(tmp_path, epochs=1, optimizer="adamw")
    assert type(t.optimizer) is torch.optim.AdamW
    t.fit()
    assert load_checkpoint(tmp_path / "last.pt")["train_config"]["optimizer"] == "adamw"
    resumed = _trainer(tmp_path, resume=tmp_path / "last.pt", epochs=2, optimizer="adamw")
    assert resumed.fit()["epochs_done"] == 2
    with pytest.raises(UserError, match="trained with optimizer 'adamw'") as err:
        _trainer(tmp_path, resume=tmp_path / "last.pt", epochs=3)  # the default: adam
    assert "\n" not in str(err.value) and "train.optimizer=adamw" in str(err.value)


def test_the_weight_average_is_what_is_validated_and_shipped(tmp_path):
    with pytest.raises(UserError, match=r"ema_decay=1.0: use 0 \(off\)"):
        TrainConfig(ema_decay=1.0)
    t = _trainer(tmp_path, epochs=2, ema_decay=0.9)
    t.fit()
    ckpt = load_checkpoint(tmp_path / "last.pt")
    # "model" (what enhance, export and evaluate load) is the average, not the last step.
    _assert_same_weights(t.ema.model, t.eval_model)
    for k, v in t.ema.model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v), k
        assert torch.equal(ckpt["train_model"][k], t.model.state_dict()[k]), k
    assert ckpt["ema_updates"] == t.state.step == 12
    differs = [
        k for k in ckpt["model"] if not torch.equal(ckpt["model"][k], ckpt["train_model"][k])
    ]
    assert differs, "after 12 steps the average should differ from the last weights"
    # Validation ran the average: its loss is that of the EMA weights, not of the last step.
    assert t.validate()["val_loss"] == t.state.history[-1]["val_loss"]
    t.ema = None
    assert t.validate()["val_loss"] != t.state.history[-1]["val_loss"]
    with pytest.raises(UserError, match=r"trained with train.ema_decay=0.9, not 0.0") as err:
        _trainer(tmp_path, resume=tmp_path / "last.pt", epochs=3)
    assert "--set train.ema_decay=0.9" in str(err.value)


def test_resume_refuses_another_model(tmp_path):
    _trainer(tmp_path, epochs=1).fit()
    with pytest.raises(UserError, match="checkpoint is for model") as err:
        Trainer(
            make_tiny(hidden=8),
            ToyLoss(),
            ToySpeechSet(24),
            None,
            TrainConfig(batch_size=4, num_workers=0, progress=False),
            TINY_STFT,
            tmp_path / "b",
            resume_from=tmp_path / "last.pt",
        )
    assert "\n" not in str(err.value)


def test_bad_settings_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="scheduler"):
        TrainConfig(scheduler="step")
    with pytest.raises(UserError, match="fewer than one batch"):
        _trainer(tmp_path, batch_size=64)


@pytest.mark.slow  # three CLI processes (~15 s)
def test_cli_trains_on_synthetic_data_and_resumes(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--model", "lite", "--data", "synthetic"]
    base += ["--out", str(out), "--batch-size", "4", "--segment-seconds", "1", "--workers", "0"]
    base += ["--model-config", "width=16", "--model-config", "n_blocks=1", "--no-progress"]
    first = run_common(*base, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    assert "alignment check" in first.stdout and "stopped: max_steps" in first.stdout
    again = run_common(*base, "--max-steps", "4", "--resume", str(out / "last.pt"))
    assert again.returncode == 0, again.stderr
    assert load_checkpoint(out / "last.pt")["step"] == 4
    bad = run_common(*base, "--model-config", "colour=7")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "colour" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    bad = run_common(*base, "--set", "train.optimizer=sgd")
    assert bad.returncode == 2 and "optimizer='sgd': use one of adam, adamw" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    # --resume names what changed: what may change goes on, what may not is refused.
    more = run_common(*base, "--max-steps", "5", "--resume", str(out / "last.pt"))
    assert more.returncode == 0, more.stderr
    assert "resuming with changed settings: train.max_steps 4 -> 5" in more.stderr
    other = base + ["--max-steps", "6", "--resume", str(out / "last.pt")]
    refused = run_common(*other, "--batch-size", "2", "--n-fft", "256")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "--resume cannot change" in refused.stderr
    assert "stft.n_fft 512 -> 256" in refused.stderr
    assert "train.batch_size 4 -> 2" in refused.stderr
    assert load_checkpoint(out / "last.pt")["step"] == 5


@pytest.mark.slow  # two CLI processes (~10 s)
def test_cli_trains_the_low_latency_stft(tmp_path):
    from common.models.lite import LOW_LATENCY_STFT

    out = tmp_path / "run"
    base = ["train", "--model", "lite", "--data", "synthetic"]
    base += ["--out", str(out), "--batch-size", "4", "--segment-seconds", "1", "--workers", "0"]
    base += ["--n-fft", "128", "--stft-hop", "64", "--no-progress", "--max-steps", "1"]
    low = ["--model-config", "erb_low=17", "--model-config", "erb_bands=16"]
    run = run_common(*base, *low)
    assert run.returncode == 0, run.stderr
    state = load_checkpoint(out / "last.pt")  # n_freq followed --n-fft; STFT stored with it
    assert state["stft"] == LOW_LATENCY_STFT.to_dict() and state["model_config"]["n_freq"] == 65
    bad = run_common(*base, "--model-config", "n_freq=257")
    assert bad.returncode == 2 and "stft.n_fft=128" in bad.stderr  # the setting, by name
    assert bad.stderr.strip().count("\n") == 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_lite_learns_on_real_mixtures_in_a_minute(tmp_path, shared_data):
    """About a minute of CPU training of `lite` on mixtures of the real speech and noise raises
    SI-SDR on held-out mixtures (speakers and noise recordings unseen in training) over the
    noisy input. Low SNRs (-5..5 dB) leave room to improve within the minute."""
    import numpy as np

    from common.config import LossConfig, StftConfig
    from common.corpus import real_corpus_splits
    from common.enhance import load_enhancer
    from common.losses import EnhancementLoss
    from common.metrics import si_sdr
    from common.mixing import MixConfig, MixingDataset
    from common.models import build_model
    from common.train import seed_everything

    splits = real_corpus_splits(shared_data, seed=0)
    mix = MixConfig(snr_db=(-5.0, 5.0), segment_seconds=2.0, seed=0)

    def mixtures(split: str, train: bool, n: int) -> MixingDataset:
        return MixingDataset(splits[split].speech, splits[split].noise, mix, train, n)

    seed_everything(0)
    stft_cfg = StftConfig()
    trainer = Trainer(
        build_model("lite"),
        EnhancementLoss(LossConfig(), stft_cfg),
        mixtures("train", True, 64),
        mixtures("val", False, 8),
        TrainConfig(
            epochs=1000,
            batch_size=8,
            lr=2e-3,
            warmup_epochs=0.5,
            # A fixed number of steps (about a minute on an idle 2-core machine), so a busy
            # machine makes the test slower, not weaker; the time cap is only a safety net.
            max_steps=120,
            max_minutes=10.0,
            patience=0,
            checkpoint_every=0,
            num_workers=1,
            progress=False,
        ),  # fmt: skip
        stft_cfg,
        tmp_path,
    )
    summary = trainer.fit()
    assert summary["step"] >= 100, f"stopped early: {summary['stop_reason']}"

    enhancer = load_enhancer(tmp_path / "last.pt", "cpu")
    held_out = mixtures("test", False, 24)
    noisy_sdr, enhanced_sdr = [], []
    for i in range(len(held_out)):
        noisy, clean = (x.numpy() for x in held_out[i])
        noisy_sdr.append(si_sdr(clean, noisy))
        enhanced_sdr.append(si_sdr(clean, enhancer.enhance(noisy, 16000)))
    gain = float(np.mean(enhanced_sdr) - np.mean(noisy_sdr))
    print(
        f"{summary['step']} steps: held-out SI-SDR {np.mean(noisy_sdr):.2f} dB noisy -> "
        f"{np.mean(enhanced_sdr):.2f} dB enhanced ({gain:+.2f} dB)"
    )
    assert gain > 0


class _Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no handler saves anything."""


def _kill_before_write(monkeypatch, n: int) -> None:
    # The trainer's n-th checkpoint write never happens: the process dies just before it.
    import common.run_store as store_mod

    real_save, seen = store_mod.save_checkpoint, {"n": 0}

    def save(path, state):
        seen["n"] += 1
        if seen["n"] == n:
            raise _Killed
        return real_save(path, state)

    monkeypatch.setattr(store_mod, "save_checkpoint", save)


def _best_epoch_held(path) -> int | None:
    return load_checkpoint(path)["best_epoch"]


def test_kill_between_best_and_last_keeps_the_set_consistent(tmp_path, monkeypatch):
    full = _trainer(tmp_path / "full", epochs=3)
    full.fit()
    assert (
        full.state.best_epoch == 3
    )  # the toy task improves every epoch: best.pt is written each time
    run = tmp_path / "run"
    # Each epoch end writes two files (best.pt and last.pt): die between the two of epoch 2.
    _kill_before_write(monkeypatch, 4)
    with pytest.raises(_Killed):
        _trainer(run, epochs=3).fit()
    monkeypatch.undo()
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    # On disk: last.pt (epoch 1) never names a best epoch best.pt lacks; best.pt is a save ahead.
    assert (last["epoch"], last["best_epoch"], best["best_epoch"]) == (1, 1, 2)
    with pytest.warns(UserWarning, match="interrupted"):
        resumed = _trainer(run, resume=run / "last.pt", model_seed=123, epochs=3)
    # Repaired at once: last.pt is the state the interrupted save was writing.
    assert _best_epoch_held(run / "last.pt") == _best_epoch_held(run / "best.pt") == 2
    assert resumed.state.epoch == 2
    resumed.fit()
    _assert_same_weights(full.model, resumed.model)
    assert _best_epoch_held(run / "last.pt") == _best_epoch_held(run / "best.pt") == 3


def test_resume_repairs_a_best_pt_left_behind_by_last_first_saves(tmp_path):
    # Saves used to write last.pt first: a kill before best.pt left last.pt naming a best epoch
    # whose weights only last.pt held. Resuming rewrites best.pt from last.pt.
    run = tmp_path / "run"
    _trainer(run, epochs=2, checkpoint_every=1).fit()
    assert _best_epoch_held(run / "last.pt") == 2
    (run / "best.pt").write_bytes((run / "epoch_001.pt").read_bytes())
    with pytest.warns(UserWarning, match="rewritten from last.pt"):
        _trainer(run, resume=run / "last.pt", epochs=3)
    assert _best_epoch_held(run / "best.pt") == 2
    assert torch.equal(
        load_checkpoint(run / "best.pt")["model"]["net.0.weight"],
        load_checkpoint(run / "last.pt")["model"]["net.0.weight"],
    )


def test_resume_from_an_older_epoch_checkpoint_is_not_repaired(tmp_path):
    run = tmp_path / "run"
    _trainer(run, epochs=2, checkpoint_every=1).fit()
    best_before = (run / "best.pt").read_bytes()
    resumed = _trainer(run, resume=run / "epoch_001.pt", epochs=2)
    assert resumed.state.epoch == 1 and (run / "best.pt").read_bytes() == best_before

"""One training path for the command line, the notebooks, smoke and bench.

    data = prepare_data(cfg, work_dir)                    # common.run_data
    result = train(cfg, data, out_dir, resume, nproc)     # one process or data-parallel
    result.summary, result.history, result.model, result.best, result.last

`train` builds the model, loss and trainer from the same config in every process, stores the
config whole in each checkpoint and `history.json`, and returns what the run produced as values
(`TrainResult`), so nothing is read back from the files the same process has just written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from common.checkpoint import load_checkpoint
from common.checks import number
from common.config import RunConfig, coerce_setting, config_dict
from common.distributed import launch_processes
from common.errors import UserError
from common.losses import EnhancementLoss
from common.models import MODEL_REGISTRY, build_model, model_names
from common.run_data import RunData, prepare_data
from common.run_store import RunStore
from common.train import Trainer, seed_everything

__all__ = ["RunData", "TrainResult", "build_run_model", "prepare_data", "train"]


@dataclass
class TrainJob:
    """Everything one training process needs (picklable, for spawned data-parallel workers)."""

    config: RunConfig
    train_set: Dataset
    val_set: Dataset | None
    out: Path
    resume: Path | None
    data_info: dict[str, Any]


def model_settings(cfg: RunConfig) -> dict[str, Any]:
    """The model's settings with `n_freq` from the STFT (a model sees the STFT's bins)."""
    settings = dict(cfg.model.settings)
    n_freq = settings.setdefault("n_freq", cfg.stft.n_freq)
    if n_freq != cfg.stft.n_freq:
        raise UserError(
            f"model.settings.n_freq={n_freq} does not match stft.n_fft={cfg.stft.n_fft} "
            f"({cfg.stft.n_freq} bins); drop n_freq, it follows the STFT"
        )
    return settings


def check_model(cfg: RunConfig) -> None:
    """Each model setting has the type of the one it replaces, and the model builds: one line
    naming the setting otherwise, before any data is prepared."""
    name, settings = cfg.model.name, model_settings(cfg)
    if name not in MODEL_REGISTRY:
        raise UserError(f"model.name={name!r}: unknown; choose one of {', '.join(model_names())}")
    cfg_cls = MODEL_REGISTRY[name][1]
    defaults = cfg_cls()
    for f in dataclasses.fields(cfg_cls):  # the same type rule as every other setting
        if f.name in settings:
            field, default = f"model.settings.{f.name}", getattr(defaults, f.name)
            value = coerce_setting(field, default, settings[f.name])
            if isinstance(default, int | float) and not isinstance(default, bool):
                number(field, value, whole=isinstance(default, int))
    try:
        build_model(name, **settings)
    except UserError:
        raise
    except Exception as exc:  # a model's own checks: channel counts, divisibility, ...
        given = " ".join(f"{k}={v}" for k, v in cfg.model.settings.items())
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"model.settings {given or '(defaults)'}: {name} cannot be built with these "
            f"settings ({reason}); change them"
        ) from None


@dataclass
class TrainResult:
    """What a training run produced, as values: `summary` is what `history.json` holds (how the
    run ended, its configuration and per-epoch `history`); `model` holds the weights of `best`
    (the EMA's when `train.ema_decay` is on), the ones the evaluation scores and a run ships."""

    summary: dict[str, Any]
    model: nn.Module
    best: Path
    last: Path

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.summary["history"]


def build_run_model(cfg: RunConfig) -> nn.Module:
    """The run's model, initialised exactly as training initialises it (seeded with
    `train.seed`): pass it to `train` to train this very object."""
    seed_everything(cfg.train.seed)
    return build_model(cfg.model.name, **model_settings(cfg))


def train_worker(job: TrainJob, model: nn.Module | None = None) -> tuple[dict, Trainer]:
    """The one training worker: model (unless given, from `build_run_model`), loss and trainer
    from the config, then `fit`; returns the summary and the trainer."""
    cfg = job.config
    trainer = Trainer(
        model if model is not None else build_run_model(cfg),
        EnhancementLoss(cfg.loss, cfg.stft),
        job.train_set,
        job.val_set,
        cfg.train,
        cfg.stft,
        job.out,
        resume_from=job.resume,
        data_info=job.data_info,
        run_config=config_dict(cfg),
    )
    return trainer.fit(), trainer


def train(
    cfg: RunConfig,
    data: RunData,
    out: Path,
    resume: Path | None = None,
    nproc: int = 1,
    start_method: str = "fork",
    model: nn.Module | None = None,
) -> TrainResult:
    """Train on `data` into `out` (one process, or `nproc` data-parallel ones). `model`, from
    `build_run_model(cfg)`, is trained in place in one process (the result's model is it);
    data-parallel workers build their own, and the result's model loads their best.pt."""
    if data.train is None:
        raise UserError("no training data was prepared (need_train=False); cannot train")
    store = RunStore(out)
    store.create()
    job = TrainJob(cfg, data.train, data.val, out, resume, data.info)
    if nproc == 1:
        summary, trainer = train_worker(job, model)
        model, best = trainer.model, trainer.best_weights
        if not trainer.store.writer:  # a torchrun rank other than 0: rank 0 holds the results
            return TrainResult(summary, model, store.path("best.pt"), store.path("last.pt"))
    else:
        launch_processes(train_worker, nproc, (job,), start_method=start_method)
        summary = json.loads(store.path("history.json").read_text())  # the workers' results
        model, best = model if model is not None else build_run_model(cfg), None
    if best is None and store.exists("best.pt"):  # written by workers or an earlier session
        best = load_checkpoint(store.path("best.pt"))["model"]
    if best is not None:
        model.load_state_dict(best)
    return TrainResult(summary, model, store.path("best.pt"), store.path("last.pt"))

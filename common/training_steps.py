"""The training notebook's steps (notebooks_src/train.py): resuming, training inside the
session's budget through `common.run` (the same path as `python -m common train`), the model's
table and the trained model's attention maps. The steps every notebook shares (configuration,
environment, evaluation of a test set, examples, `summary.json`) are `common.experiment`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.audio import SAMPLE_RATE
from common.config import RunConfig, TrainConfig
from common.errors import UserError
from common.experiment import RunEnvironment, Session, eval_reserve_minutes
from common.kaggle_paths import KAGGLE_INPUT, kaggle_input_files
from common.model_table import model_blocks, model_table
from common.run import RunData, TrainResult, train


def locate_resume_checkpoint(spec: str) -> Path:
    """The checkpoint to resume from; on Kaggle, where the mount layout has changed over time
    (`/kaggle/input/<slug>/` vs `/kaggle/input/datasets/<owner>/<slug>/`), the same file name
    under a folder of the same slug is accepted too."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_relative_to(KAGGLE_INPUT) and len(path.parts) > 3:
        slug = path.parts[3]
        found = [p for p in kaggle_input_files(path.name) if slug in p.parts]
        if found:
            print(f"resume_checkpoint: {spec} not found; using {found[0]}")
            return found[0]
    raise UserError(
        f"resume_checkpoint={spec!r}: file not found; attach the earlier run's output or fix the path"
    )


def describe_training(t: TrainConfig) -> str:
    """What the training does, in one line generated from `[train]`: the notebook's markdown
    says nothing a recipe could contradict, this line says what this recipe runs."""
    if t.scheduler == "cosine":
        fitted = " fitted to the time budget" if t.max_minutes else ""
        schedule = f"cosine decay to {t.min_lr:g}{fitted}"
    else:
        schedule = (
            f"x{t.plateau_factor:g} after {t.plateau_patience} epochs without improvement "
            f"(down to {t.min_lr:g})"
        )
    warmup = f"linear warmup over {t.warmup_epochs:g} epochs, then " if t.warmup_epochs else ""
    stops = [f"{t.epochs} epochs"]
    if t.max_steps:
        stops.append(f"{t.max_steps} steps")
    if t.max_minutes:
        clock = "CPU" if t.budget_clock == "cpu" else "wall-clock"
        stops.append(f"{t.max_minutes:g} {clock} minutes")
    if t.patience:
        stops.append(f"{t.patience} epochs without improvement (early stopping)")
    ema = (
        f"an average of the weights (EMA {t.ema_decay:g}) validated and shipped; "
        if t.ema_decay
        else ""
    )
    return (
        f"training: {t.optimizer} at lr {t.lr:g} for a batch of {t.batch_size} (weight decay "
        f"{t.weight_decay:g}); {warmup}{schedule}; gradients clipped at {t.grad_clip:g}; {ema}"
        f"stops at the first of {', '.join(stops)}"
    )


def run_training(
    cfg: RunConfig,
    data: RunData,
    env: RunEnvironment,
    session: Session,
    model: nn.Module | None = None,
) -> tuple[RunConfig, TrainResult]:
    """Train through `common.run.train` inside the session's budget (`model`: from
    `common.run.build_run_model`, trained in place); returns the configuration as it ran (its
    `train.max_minutes` capped by what the session has left) and the `TrainResult`."""
    out_dir = session.out_dir()
    resume = (
        locate_resume_checkpoint(session.resume_checkpoint) if session.resume_checkpoint else None
    )
    # Training gets what is left of the session less the evaluation's reserve.
    minutes = env.budget.training_minutes(eval_reserve_minutes(cfg, session))
    clock = cfg.train.budget_clock
    if cfg.train.max_minutes is not None and cfg.train.max_minutes <= minutes:
        minutes = cfg.train.max_minutes  # the recipe's own budget, on its own clock
    else:
        # The session's wall clock binds: a CPU-time budget could outlast it (a process waiting
        # on a GPU uses less CPU time than wall time) and Kaggle would stop the session first.
        clock = "wall"
    cfg = replace(cfg, train=replace(cfg.train, max_minutes=round(minutes, 3), budget_clock=clock))
    print(f"training budget: {minutes:.1f} min")
    print(describe_training(cfg.train))
    start = time.time()
    result = train(cfg, data, out_dir, resume, env.nproc, model=model)
    print(
        f"training finished in {time.time() - start:.0f} s: {result.summary.get('stop_reason')}, "
        f"best epoch {result.summary.get('best_epoch')}"
    )
    return cfg, result


def show_attention(model: nn.Module, clip: np.ndarray, cfg: RunConfig, out_dir: Path) -> int:
    """Per-head attention maps of the trained model (`TrainResult.model`, best.pt's weights) on
    one clip; the number of maps shown (0 for a model without attention)."""
    import matplotlib.pyplot as plt

    from common.attention import capture_attention
    from common.audio import stft
    from common.plots import plot_attention_maps

    wav = torch.as_tensor(clip[: SAMPLE_RATE * 3]).unsqueeze(0)
    maps = capture_attention(model.cpu(), stft(wav, cfg.stft))
    for layer_name, weights in list(maps.items())[:4]:
        plot_attention_maps(
            [weights[:1]], title=layer_name, path=out_dir / f"attention_{layer_name}.png"
        )
        plt.show()
    if not maps:
        print(f"{cfg.model.name} has no attention layers")
    return min(len(maps), 4)


def show_model(model: nn.Module, cfg: RunConfig) -> float:
    """The model as a table (block, output shape for 1 s of audio, parameters); returns its
    multiply-accumulates per second of audio in G (for summary.json)."""
    print(model_table(model, cfg.stft))
    return model_blocks(model, cfg.stft)[1] / 1e9

"""Where a training run stands, and what a checkpoint must match to continue it.

`TrainState` (epoch, position in it, step, best loss, history) is saved with `asdict` as
top-level keys of every checkpoint, beside the weights, the optimizer, scheduler and scaler
states and the RNG (`checkpoint_state`), and read back by `TrainState.from_checkpoint`.
`check_resume` refuses a checkpoint whose state cannot carry over to the current settings and
reports the settings that changed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from common.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    capture_rng_state,
    json_safe,
    plain,
    restore_rng_state,
)
from common.errors import UserError

# What `--resume` may not change: the checkpoint's weights, optimizer state and position in the
# epoch only mean something for the same model, STFT, loss, optimizer, batch, sample order and
# data. Everything else (epochs, budgets, lr schedule, patience, workers, device, where the data
# lives, evaluation) may change between sessions; the changes are reported.
RESUME_FIXED = (
    "model.",
    "stft.",
    "loss.",
    "train.optimizer",
    "train.ema_decay",
    "train.batch_size",
    "train.seed",
    "data.source",
    "data.segment_seconds",
    "data.val_fraction",
    "data.max_train_pairs",
    "data.mix_items",
    "data.snr_db",
    "data.exclude_noncommercial",
    "data.babble_prob",
)
RESUME_IGNORED = ("recipe", "description")


@dataclass
class EpochTotals:
    """Running sums of one epoch's training losses (kept in checkpoints for mid-epoch resume)."""

    loss_sum: float = 0.0
    count: int = 0
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, parts: dict[str, Any]) -> None:
        """One step's loss and its parts (a non-finite loss, a skipped step, is not counted)."""
        if math.isfinite(loss):
            self.loss_sum += loss
            self.count += 1
            for k, v in parts.items():
                self.parts[k] = self.parts.get(k, 0.0) + float(v)

    def means(self, sum_over_ranks: Callable[[list[float]], list[float]]) -> dict[str, Any]:
        """The epoch's mean training loss and parts over every process's steps."""
        keys = sorted(self.parts)
        sums = sum_over_ranks([self.loss_sum, float(self.count)] + [self.parts[k] for k in keys])
        n = max(sums[1], 1.0)
        return {
            "train_loss": sums[0] / n if sums[1] else math.nan,
            "train_parts": {k: v / n for k, v in zip(keys, sums[2:])},
        }


@dataclass
class TrainState:
    """Where a run stands: what a checkpoint stores besides the weights, the optimizer, scheduler
    and scaler states and the RNG. Saved with `asdict` as top-level checkpoint keys."""

    epoch: int = 0  # index of the epoch in progress (or next to start)
    samples_in_epoch: int = 0  # effective-batch samples already consumed in `epoch`
    epoch_totals: EpochTotals = field(default_factory=EpochTotals)
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_seconds: float = 0.0  # summed over sessions
    history: list[dict] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, state: dict) -> TrainState:
        """The state saved in a checkpoint dict (a key it lacks keeps its default)."""
        values = {f.name: state[f.name] for f in fields(cls) if f.name in state}
        values["epoch_totals"] = EpochTotals(**values.get("epoch_totals", {}))
        values["history"] = list(values.get("history", []))
        return cls(**values)


@dataclass
class RunIdentity:
    """What a checkpoint says its run is: the model, STFT, loss, data and whole configuration."""

    model_name: str
    model_config: dict
    stft: dict
    loss_config: dict | None
    data: dict
    run_config: dict

    @classmethod
    def of(cls, model: nn.Module, stft: Any, loss_fn: Any, data: dict, run_config: dict):
        name = getattr(model, "name", None) or type(model).__name__
        cfg = getattr(model, "cfg", None)
        loss_cfg = getattr(loss_fn, "cfg", None)
        return cls(
            str(name),
            plain(asdict(cfg)) if is_dataclass(cfg) else {},
            plain(stft.to_dict()),
            plain(asdict(loss_cfg)) if is_dataclass(loss_cfg) else None,
            plain(data or {}),
            plain(run_config or {}),
        )


def checkpoint_state(
    who: RunIdentity,
    train_config: dict,
    weights: dict,
    training: dict,
    state: TrainState,
) -> dict:
    """The checkpoint dict: identity, the weights shipped ("model"), the training objects'
    states (`training`: optimizer, scheduler, scaler, and with EMA the raw weights), the
    `TrainState` and the RNG, in plain types."""
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_name": who.model_name,
        "model_config": who.model_config,
        "stft": who.stft,
        "train_config": train_config,
        "loss_config": who.loss_config,
        "data": who.data,
        "run_config": who.run_config,
        "model": weights,
        **training,
        **plain(asdict(state)),
        "rng": capture_rng_state(),
        "torch_version": str(torch.__version__),
    }


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not name.startswith("model.settings"):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def changed_settings(stored: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """Fields (dotted names) whose value differs between two stored RunConfigs; a field one of
    them lacks (written before it existed) is not a change."""
    old, new = _flat(stored), _flat(current)
    return {
        k: (old[k], new[k])
        for k in sorted(set(old) & set(new))
        if old[k] != new[k] and k not in RESUME_IGNORED
    }


def _check_changed_settings(path: Path, stored: dict, current: dict, warn: bool) -> None:
    """Every setting that differs from the checkpoint's run, named: refused where the
    checkpoint's state cannot carry over (RESUME_FIXED), reported (`warn`) where it can."""
    changed = changed_settings(stored, current)
    fixed = {k: v for k, v in changed.items() if k.startswith(RESUME_FIXED)}
    if fixed:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in fixed.items())
        raise UserError(
            f"{path}: --resume cannot change {listed} (the checkpoint's state belongs to its "
            "settings); resume with the checkpoint's values, or start a new run in another "
            "--out"
        )
    if changed and warn:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        warnings.warn(f"{path}: resuming with changed settings: {listed}", stacklevel=3)


def check_resume(
    path: Path, checkpoint: dict, who: RunIdentity, optimizer: str, ema_decay: float, warn: bool
) -> None:
    """Refuse, in one line, a checkpoint of another model, STFT, optimizer or EMA setting (or
    any RESUME_FIXED setting); report (with `warn`) the settings that changed."""
    # The whole stored configuration first: it names every changed setting at once.
    stored = checkpoint.get("run_config") or {}
    if stored and who.run_config:
        _check_changed_settings(path, stored, who.run_config, warn)
    name, model_cfg = checkpoint["model_name"], checkpoint["model_config"]
    if name != who.model_name or model_cfg != who.model_config:
        raise UserError(
            f"{path}: checkpoint is for model {name!r} with config {model_cfg}, not "
            f"{who.model_name!r} with {who.model_config}; resume with the same model.name "
            "and model.settings"
        )
    if checkpoint["stft"] != who.stft:
        raise UserError(
            f"{path}: checkpoint uses STFT {checkpoint['stft']}, not {who.stft}; "
            "resume with the same stft.n_fft and stft.hop_length"
        )
    # Checkpoints from before the setting existed were trained with Adam.
    stored_optimizer = checkpoint.get("train_config", {}).get("optimizer", "adam")
    if stored_optimizer != optimizer:
        raise UserError(
            f"{path}: checkpoint was trained with optimizer {stored_optimizer!r}, not "
            f"{optimizer!r}; resume with --set train.optimizer={stored_optimizer}"
        )
    stored_ema = checkpoint.get("train_config", {}).get("ema_decay", 0.0)
    if stored_ema != ema_decay:
        raise UserError(
            f"{path}: checkpoint was trained with train.ema_decay={stored_ema}, not "
            f"{ema_decay}; resume with --set train.ema_decay={stored_ema}"
        )


def optimisation_state(
    model: nn.Module, ema: Any, optimizer: Any, schedule: Any, scaler: Any
) -> tuple[dict, dict]:
    """(the weights shipped, the training objects' states) for `checkpoint_state`: with an EMA
    the averaged weights ship and the raw ones are kept as "train_model", for resuming."""
    training = {
        **({"train_model": model.state_dict(), "ema_updates": ema.updates} if ema else {}),
        "optimizer": optimizer.state_dict(),
        "scheduler": plain(schedule.state_dict()),
        "scaler": plain(scaler.state_dict()),
    }
    return (ema.model if ema is not None else model).state_dict(), training


def restore_optimisation(
    checkpoint: dict,
    model: nn.Module,
    ema: Any,
    optimizer: Any,
    schedule: Any,
    scaler: Any,
    use_amp: bool,
) -> TrainState:
    """Inverse of `optimisation_state` plus the RNG; returns the checkpoint's `TrainState`."""
    if ema is not None:
        model.load_state_dict(checkpoint["train_model"])
        ema.load_state_dict(checkpoint["model"], checkpoint["ema_updates"])
    else:
        model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["scheduler"])
    if use_amp and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    state = TrainState.from_checkpoint(checkpoint)
    restore_rng_state(checkpoint["rng"])
    return state


def run_summary(
    who: RunIdentity, state: TrainState, stop_reason: str | None, device: Any, train_config: dict
) -> dict:
    """History plus how the run ended: what `history.json` holds, JSON-safe."""
    return json_safe(
        {
            "model": who.model_name,
            "epochs_done": state.epoch,
            "step": state.step,
            "stop_reason": stop_reason,
            "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss,
            "train_seconds": state.train_seconds,
            "device": str(device),
            "train_config": train_config,
            "run_config": who.run_config,
            "history": state.history,
        }
    )


def train_config_dict(cfg: Any, world_size: int, per_rank_batch: int, steps: int, amp: bool):
    """The train config plus how the batch is split, as stored in checkpoints."""
    return {
        **plain(asdict(cfg)),
        "world_size": world_size,
        "per_process_batch_size": per_rank_batch,
        "effective_batch_size": per_rank_batch * world_size,
        "lr_rule": "lr applies to the effective batch; not scaled with the process count",
        "steps_per_epoch": steps,
        "amp_used": amp,
    }

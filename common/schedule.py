"""The learning-rate schedule of a run, one object: a linear warmup, then a cosine or the plateau
scheduler (`TrainConfig.scheduler`).

    schedule = LrSchedule(optimizer, cfg, steps_per_epoch, budget)
    schedule.apply(step)                  # before each optimizer step
    schedule.end_epoch(val_loss, step)    # at each completed epoch (the plateau scheduler)

The lr of a step is `learning_rate`, a pure function of the step, except for two measured
inputs: the plateau scheduler's lr (what it lowered the lr to at epoch ends, saved in every
checkpoint) and, with a time budget, the cosine's length fitted to the budget from the measured
step rate. A `max_steps` run therefore follows the same lrs on every machine; a time-limited
cosine run does not (it depends on the machine's speed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from common.budget import TrainBudget
from common.config import TrainConfig


def learning_rate(
    step: int, cfg: TrainConfig, warmup_steps: int, total_steps: int, plateau_lr: float
) -> float:
    """The lr of optimizer step `step` (0-based): a linear warmup from lr/warmup_steps to lr,
    then either a cosine from lr to min_lr at `total_steps`, or the plateau scheduler's lr: the
    full lr when warmup ends, then `plateau_lr`, what the scheduler lowered it to at epoch ends."""
    if step < warmup_steps:
        return cfg.lr * (step + 1) / warmup_steps
    if cfg.scheduler == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return plateau_lr if step > warmup_steps else cfg.lr


class LrSchedule:
    """Sets the optimizer's lr for each step. `sum_over_ranks` sums a list of numbers over the
    `world_size` data-parallel processes (every rank must step with the same lr)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: TrainConfig,
        steps_per_epoch: int,
        budget: TrainBudget,
        sum_over_ranks: Callable[[list[float]], list[float]] = list,
        world_size: int = 1,
    ) -> None:
        self.optimizer, self.cfg, self.budget = optimizer, cfg, budget
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.sum_over_ranks, self.world_size = sum_over_ranks, world_size
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            min_lr=cfg.min_lr,
        )

    @property
    def lr(self) -> float:
        """The lr the optimizer holds now."""
        return self.optimizer.param_groups[0]["lr"]

    def apply(self, step: int) -> None:
        """Set the lr of optimizer step `step`."""
        cosine = self.cfg.scheduler == "cosine"
        total = self.cosine_total_steps(step) if cosine and step >= self.warmup_steps else 0
        lr = learning_rate(step, self.cfg, self.warmup_steps, total, plateau_lr=self.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def cosine_total_steps(self, step: int) -> int:
        """Steps the cosine spans: the epochs, `max_steps`, or what fits in the time budget."""
        total = self.cfg.epochs * self.steps_per_epoch
        if self.cfg.max_steps:
            total = min(total, self.cfg.max_steps)
        fitted = self.budget.steps_by_deadline(step)
        if fitted is not None:
            total = min(total, int(self.sum_over_ranks([fitted])[0] / self.world_size))
        return total

    def end_epoch(self, monitored: float, step: int) -> None:
        """A completed epoch's monitored loss, for the plateau scheduler (after warmup)."""
        if self.cfg.scheduler == "plateau" and step >= self.warmup_steps:
            self.plateau.step(monitored)

    def state_dict(self) -> dict[str, Any]:
        return self.plateau.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state)

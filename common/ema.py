"""An exponential moving average (EMA) of a model's weights, the copy that is validated and shipped.

Short CPU runs end while the weights still jitter from step to step (checkpoint-to-checkpoint
PESQ noise of about +-0.1 on this project's data); the average of the recent weights is smoother
and usually better than any single one of them. The decay warms up as min(decay, (1+n)/(10+n))
after n updates, so the average forgets the random initialisation within the first few hundred
steps even at decay 0.999 (an average over roughly the last 1,000 steps).

Buffers (BatchNorm running statistics) are copied, not averaged: they are already running
averages, and copying keeps them consistent with what the training model last saw.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """`ema.update(model)` after each optimizer step; `ema.model` is the averaged copy."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay} must lie in (0, 1)")
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - d)  # ema += (1 - d) * (p - ema)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = int(updates)

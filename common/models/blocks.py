"""Layers shared by the models: input features, masks, positions, a cache-carrying causal conv."""

from __future__ import annotations

import math

import torch
from torch import nn

from common.errors import UserError


def log1p_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """Complex (B, F, T) -> the seed models' input, log1p(|X|) as (B, 1, F, T)."""
    return torch.log1p(spec.abs()).unsqueeze(1)


def apply_magnitude_mask(mask: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
    """A real mask (B, 1, F, T) times the noisy complex spectrum (B, F, T): the noisy phase is kept."""
    return mask.squeeze(1) * spec


def init_seed_weights(model: nn.Module) -> None:
    """The seed notebooks' initialisation: Kaiming for convs and linears, ones/zeros for BatchNorm."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) sinusoidal position table, computed for any length (no max_len to outgrow)."""
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class CausalTimeConv2d(nn.Module):
    """Conv2d over (B, C, T, F) whose time axis sees only the past, with its history as state.

    The same code runs a whole clip (history = zeros) and one frame at a time (history = the
    previous call's last `kernel_t - 1` input frames), so offline and streaming outputs agree.
    With `causal=False` the time padding is centred instead (look-ahead, no streaming).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: tuple[int, int],
        stride_f: int = 1,
        groups: int = 1,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_t, kernel_f = kernel
        self.causal = causal
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel, stride=(1, stride_f), padding=(0, kernel_f // 2), groups=groups
        )

    def init_cache(self, x: torch.Tensor) -> torch.Tensor:
        """Zero history shaped for input `x` (B, C, T, F)."""
        b, c, _, f = x.shape
        return x.new_zeros(b, c, self.kernel_t - 1, f)

    def forward(
        self, x: torch.Tensor, cache: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.causal:
            pad = self.kernel_t - 1
            x = nn.functional.pad(x, (0, 0, pad // 2, pad - pad // 2))
            return self.conv(x), None
        if cache is None:
            cache = self.init_cache(x)
        x = torch.cat([cache, x], dim=2)
        return self.conv(x), x[:, :, x.shape[2] - (self.kernel_t - 1) :]


def check_spec_input(spec: torch.Tensor, n_freq: int, model_name: str) -> None:
    """Refuse an input that does not come from the STFT the model was built for."""
    if not spec.is_complex() or spec.dim() != 3:
        raise UserError(
            f"model {model_name!r}: input must be a complex STFT (B, F, T), got "
            f"{tuple(spec.shape)} {spec.dtype}; pass common.audio.stft(wav, cfg)"
        )
    if spec.shape[1] != n_freq:
        raise UserError(
            f"model {model_name!r}: built for n_freq={n_freq} bins, got {spec.shape[1]}; "
            f"use the StftConfig it was built/trained with (n_fft={2 * (n_freq - 1)})"
        )

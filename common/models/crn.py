"""`crn`: the team's CRN baseline ("CRN Fixed / v2", 1,811,009 parameters at n_freq=257).

|X| -> log1p -> (B, 1, F, T)
  -> 3 x [Conv2d 3x3, stride (2,1) on frequency, BN, ReLU]: 1 -> 64 -> 128 -> 256 channels
  -> per-frequency 2-layer LSTM(256) over time (each of the ~F/8 bands is one sequence)
  -> 3 x [ConvTranspose2d 3x3, stride (2,1), BN, ReLU]: 256 -> 128 -> 64 -> 32
  -> resize to F (8 x F/8 overshoots 257) -> Conv2d 1x1 -> sigmoid mask
  -> mask x noisy complex spectrum (noisy phase)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.models.blocks import (
    apply_magnitude_mask,
    check_spec_input,
    init_seed_weights,
    log1p_magnitude,
)


@dataclass
class CRNConfig:
    n_freq: int = 257
    channels: tuple[int, int, int] = (64, 128, 256)
    decoder_out: int = 32
    lstm_layers: int = 2
    dropout: float = 0.1


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=(2, 1), padding=1), nn.BatchNorm2d(cout), nn.ReLU()
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    # output_padding (1, 0) doubles the frequency size exactly and keeps T.
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=(2, 1), padding=1, output_padding=(1, 0)),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class CRN(nn.Module):
    name = "crn"

    def __init__(self, cfg: CRNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CRNConfig()
        c1, c2, c3 = cfg.channels
        self.encoder = nn.Sequential(_down(1, c1), _down(c1, c2), _down(c2, c3))
        self.lstm = nn.LSTM(
            c3, c3, num_layers=cfg.lstm_layers, batch_first=True, dropout=cfg.dropout
        )
        self.decoder = nn.Sequential(_up(c3, c2), _up(c2, c1), _up(c1, cfg.decoder_out))
        self.mask = nn.Sequential(nn.Conv2d(cfg.decoder_out, 1, 1), nn.Sigmoid())
        init_seed_weights(self)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        check_spec_input(spec, self.cfg.n_freq, self.name)
        x = self.encoder(log1p_magnitude(spec))  # (B, C, F/8, T)
        b, c, f, t = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * f, t, c)
        seq, _ = self.lstm(seq)
        x = seq.reshape(b, f, t, c).permute(0, 3, 1, 2)
        x = self.decoder(x)
        x = nn.functional.interpolate(x, size=(spec.shape[1], t), mode="bilinear")
        return apply_magnitude_mask(self.mask(x), spec)

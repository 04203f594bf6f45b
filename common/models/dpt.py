"""`dpt`: the dual-path Transformer ("DPT v2", 904,705 parameters at n_freq=257).

|X| -> log1p -> (B, 1, F, T)
  -> [Conv2d 3x3, stride (2,1), BN, ReLU] 1 -> 32, then 32 -> 128: (B, 128, ~F/4 = 65 bands, T)
  -> 2 x dual-path block:
       frequency Transformer layer (each frame: attend across the 65 bands)
       time Transformer layer (each band: attend across the T frames)
       (d 128, 4 heads, ff 512, Pre-LN)
  -> + encoder output (skip) -> bilinear upsample to (F, T)
  -> [Conv 3x3, BN, ReLU] 128 -> 64 -> Conv 1x1 -> 1 -> sigmoid mask
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
class DPTConfig:
    n_freq: int = 257
    enc_channels: int = 32
    d_model: int = 128
    n_heads: int = 4
    ff_dim: int = 512
    n_blocks: int = 2
    decoder_channels: int = 64
    dropout: float = 0.1


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=(2, 1), padding=1), nn.BatchNorm2d(cout), nn.ReLU()
    )


class DualPathTransformerBlock(nn.Module):
    """Attention across frequency within each frame, then across time within each band."""

    def __init__(self, cfg: DPTConfig) -> None:
        super().__init__()

        def layer() -> nn.TransformerEncoderLayer:
            return nn.TransformerEncoderLayer(
                cfg.d_model,
                cfg.n_heads,
                cfg.ff_dim,
                dropout=cfg.dropout,
                batch_first=True,
                norm_first=True,
            )

        self.freq_layer = layer()
        self.time_layer = layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        seq = x.permute(0, 3, 2, 1).reshape(b * t, f, c)
        seq = self.freq_layer(seq).reshape(b, t, f, c)
        seq = seq.permute(0, 2, 1, 3).reshape(b * f, t, c)
        seq = self.time_layer(seq).reshape(b, f, t, c)
        return seq.permute(0, 3, 1, 2)


class DPT(nn.Module):
    name = "dpt"

    def __init__(self, cfg: DPTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or DPTConfig()
        self.encoder = nn.Sequential(
            _down(1, cfg.enc_channels), _down(cfg.enc_channels, cfg.d_model)
        )
        self.blocks = nn.Sequential(*[DualPathTransformerBlock(cfg) for _ in range(cfg.n_blocks)])
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.d_model, cfg.decoder_channels, 3, padding=1),
            nn.BatchNorm2d(cfg.decoder_channels),
            nn.ReLU(),
            nn.Conv2d(cfg.decoder_channels, 1, 1),
        )
        init_seed_weights(self)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        check_spec_input(spec, self.cfg.n_freq, self.name)
        enc = self.encoder(log1p_magnitude(spec))
        x = self.blocks(enc) + enc
        x = nn.functional.interpolate(x, size=spec.shape[1:], mode="bilinear")
        return apply_magnitude_mask(torch.sigmoid(self.decoder(x)), spec)

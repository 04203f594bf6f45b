"""`transformer`: the Review 2/3 CNN + shallow Transformer (2,451,457 parameters).

    |X| -> log1p -> (B, 1, F, T)
      -> 3 x [Conv2d 3x3, BN, ReLU]: 1 -> 64 -> 128 -> 256 (full frequency resolution)
      -> mean over frequency -> (B, T, 256)        <- the documented weakness: one vector per frame
      -> Linear -> + sinusoidal positions -> 2 x Pre-LN Transformer layer (4 heads, ff 1024)
      -> Linear -> copied to every frequency -> (B, 256, F, T)
      -> [Conv 3x3, BN, ReLU] 256 -> 128 -> 64 -> Conv 3x3 -> 1 -> sigmoid mask
      -> mask x noisy complex spectrum (noisy phase)

It is kept as the reference point that shows why collapsing frequency fails; see `dpt` and `lite`.
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
    sinusoidal_positions,
)


@dataclass
class TransformerConfig:
    n_freq: int = 257
    channels: tuple[int, int, int] = (64, 128, 256)
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 1024
    dropout: float = 0.1


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class ShallowTransformer(nn.Module):
    name = "transformer"

    def __init__(self, cfg: TransformerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or TransformerConfig()
        c1, c2, c3 = cfg.channels
        self.encoder = nn.Sequential(_conv_block(1, c1), _conv_block(c1, c2), _conv_block(c2, c3))
        self.pre_proj = nn.Linear(c3, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model,
            cfg.n_heads,
            cfg.ff_dim,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.post_proj = nn.Linear(cfg.d_model, c3)
        self.decoder = nn.Sequential(
            _conv_block(c3, c2), _conv_block(c2, c1), nn.Conv2d(c1, 1, 3, padding=1)
        )
        init_seed_weights(self)

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        """Noisy spectrum -> the Transformer's input sequence (B, T, d_model)."""
        check_spec_input(spec, self.cfg.n_freq, self.name)
        x = self.encoder(log1p_magnitude(spec)).mean(dim=2)  # (B, C, T)
        x = self.pre_proj(x.transpose(1, 2))
        return x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.post_proj(self.transformer(self.encode(spec)))  # (B, T, C)
        x = x.transpose(1, 2).unsqueeze(2).expand(-1, -1, spec.shape[1], -1)
        mask = torch.sigmoid(self.decoder(x))
        return apply_magnitude_mask(mask, spec)


@torch.no_grad()
def transformer_attention_maps(
    model: ShallowTransformer, spec: torch.Tensor, index: int = 0
) -> torch.Tensor:
    """Self-attention weights of clip `index` in `spec` (B, F, T): (layers, heads, T, T).

    Pre-LN layers attend over norm1(x), so the weights are taken from that input, then the layer
    runs as usual to feed the next one.
    """
    x = model.encode(spec[index : index + 1])
    maps = []
    for layer in model.transformer.layers:
        h = layer.norm1(x)
        _, weights = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
        maps.append(weights[0])
        x = layer(x)
    return torch.stack(maps)

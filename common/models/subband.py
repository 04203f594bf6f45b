"""`lite-sb`: `lite` with sub-band time modelling, one GRU (and projection) per group of bands.

In `lite` every band shares one time-GRU; a band's identity comes only from a learned position
vector. Low bands (voiced harmonics, slow pitch movements) and high bands (fricatives, noise
bursts) behave differently in time, so the band-split / sub-band enhancers (BSRNN, FSPEN) give
frequency regions weights of their own. Here the bands seen by the dual-path blocks are cut into
`band_groups` contiguous groups, each with its own GRU and projection: the parameters grow about
`band_groups`-fold in the time path while the MACs per second stay exactly those of one shared
GRU (every band still runs one GRU of the same size per frame). The project's budget binds on
MACs (0.3 G/s), not parameters (350K), so this spends parameters where compute is not spent.

The GRU state keeps `lite`'s layout, (1, B * F, H) with the bands of one batch item contiguous,
so `LiteNet.init_state`, streaming and the ONNX state inputs are unchanged. Only the time path
of each dual-path block differs from `lite`; it is a model of its own (not a `lite` option) so
that `lite` checkpoints keep exactly their configuration and resume as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.errors import UserError
from common.models.lite import DualPathBlock, LiteConfig, LiteNet


@dataclass
class LiteSubbandConfig(LiteConfig):
    band_groups: int = 4  # contiguous groups of the blocks' bands, each with its own time-GRU

    def __post_init__(self) -> None:
        if not self.causal:
            raise UserError(
                "LiteSubbandConfig.causal=False: lite-sb is causal only; use causal=True"
            )


def band_group_edges(n_bands: int, groups: int) -> list[int]:
    """Edges of `groups` contiguous, nearly equal groups of `n_bands` bands: [0, ..., n_bands]."""
    if not 1 <= groups <= n_bands:
        raise UserError(
            f"LiteSubbandConfig.band_groups={groups}: use 1 to {n_bands} (the bands the blocks see)"
        )
    return [round(i * n_bands / groups) for i in range(groups + 1)]


class BandGroupGRU(nn.Module):
    """Forward GRU across time with separate weights per band group: (T, B, F, C) -> (T, B, F, C).

    `h` is (1, B * F, H) as for one shared GRU over B * F sequences, or None for zeros.
    """

    def __init__(self, width: int, hidden: int, n_bands: int, groups: int) -> None:
        super().__init__()
        self.edges = band_group_edges(n_bands, groups)
        self.hidden = hidden
        self.rnns = nn.ModuleList(nn.GRU(width, hidden) for _ in range(groups))
        self.fcs = nn.ModuleList(nn.Linear(hidden, width) for _ in range(groups))

    def forward(self, y: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        t, b, f, c = y.shape
        h4 = None if h is None else h.reshape(1, b, f, self.hidden)
        outs, states = [], []
        for (lo, hi), rnn, fc in zip(zip(self.edges, self.edges[1:]), self.rnns, self.fcs):
            part = y[:, :, lo:hi].reshape(t, b * (hi - lo), c)
            h0 = None if h4 is None else h4[:, :, lo:hi].reshape(1, b * (hi - lo), self.hidden)
            out, hn = rnn(part, h0)
            outs.append(fc(out).reshape(t, b, hi - lo, c))
            states.append(hn.reshape(1, b, hi - lo, self.hidden))
        return torch.cat(outs, dim=2), torch.cat(states, dim=2).reshape(1, b * f, self.hidden)


class SubbandBlock(DualPathBlock):
    """`lite`'s dual-path block with `BandGroupGRU` as its time path."""

    def build_time_path(self, cfg: LiteSubbandConfig, n_bands: int) -> None:
        self.time_rnn = BandGroupGRU(cfg.width, cfg.time_hidden, n_bands, cfg.band_groups)

    def time_path(
        self, y: torch.Tensor, h: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.time_rnn(y, h)


class LiteSubbandNet(LiteNet):
    name = "lite-sb"
    block_cls = SubbandBlock

    def __init__(self, cfg: LiteSubbandConfig | None = None) -> None:
        super().__init__(cfg or LiteSubbandConfig())

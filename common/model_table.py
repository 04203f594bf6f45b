"""A model as a reviewer reads it: one line per block (output shape for one second of audio,
parameters), the total, and the multiply-accumulates per second of audio, instead of the
module's 80-line repr."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.audio import SAMPLE_RATE, stft
from common.config import StftConfig


@dataclass
class Block:
    name: str
    kind: str
    output_shape: str
    params: int


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children; a ModuleList (never called itself) is listed by its items."""
    out = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            out += [(f"{name}.{i}", c) for i, c in enumerate(child)]
        else:
            out.append((name, child))
    return out


def _shape(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return (
            "("
            + ", ".join(str(d) for d in value.shape)
            + ")"
            + (" complex" if value.is_complex() else "")
        )
    if isinstance(value, (tuple, list)) and value:
        return _shape(value[0])
    return "–"


def model_blocks(
    model: nn.Module, cfg: StftConfig | None = None, seconds: float = 1.0
) -> tuple[list[Block], float]:
    """(blocks, MACs per second of audio) from one forward pass over `seconds` of noise."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = cfg or StftConfig()
    blocks = _blocks(model)
    shapes: dict[str, str] = {}
    hooks = []
    for name, module in blocks:

        def record(_m: nn.Module, _inp: object, out: object, name: str = name) -> None:
            shapes.setdefault(name, _shape(out))

        hooks.append(module.register_forward_hook(record))
    spec = stft(torch.randn(1, int(SAMPLE_RATE * seconds)) * 0.1, cfg)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(spec)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = [
        Block(
            name,
            type(module).__name__,
            shapes.get(name, "– (used by other blocks)"),
            sum(p.numel() for p in module.parameters()),
        )
        for name, module in blocks
    ]
    return rows, counter.get_total_flops() / 2 / seconds


def model_table(model: nn.Module, cfg: StftConfig | None = None) -> str:
    """The table as text, with the input, the total and MACs/s."""
    rows, macs = model_blocks(model, cfg)
    cfg = cfg or StftConfig()
    total = sum(p.numel() for p in model.parameters())
    width = max([len(r.name) for r in rows] + [5])
    kind_w = max([len(r.kind) for r in rows] + [4])
    lines = [
        f"input: complex STFT (1, {cfg.n_fft // 2 + 1} bins, frames) of 1 s of audio",
        f"{'block':<{width}}  {'type':<{kind_w}}  {'output shape':<28}{'params':>12}",
    ]
    lines += [
        f"{r.name:<{width}}  {r.kind:<{kind_w}}  {r.output_shape:<28}{r.params:>12,}" for r in rows
    ]
    lines.append(f"{'total':<{width}}  {'':<{kind_w}}  {'':<28}{total:>12,}")
    lines.append(f"{macs / 1e9:.3f} G multiply-accumulates per second of audio")
    return "\n".join(lines)

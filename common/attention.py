"""Attention maps of any model built from `nn.MultiheadAttention`, for plotting.

PyTorch's Transformer layers call attention with `need_weights=False` (the fast path), so the
weights are never materialised. Here each attention module is wrapped for one forward pass to
return per-head weights, which are collected in call order.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def capture_attention(model: nn.Module, spec: torch.Tensor) -> dict[str, torch.Tensor]:
    """Run `model(spec)` once and return {module name: (batch*, heads, query, key)} weights."""
    maps: dict[str, torch.Tensor] = {}
    originals = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            originals[name] = module.forward

            def forward(*args, _orig=module.forward, _name=name, **kwargs):
                kwargs["need_weights"] = True
                kwargs["average_attn_weights"] = False
                out, weights = _orig(*args, **kwargs)
                maps[_name] = weights.detach().cpu()
                return out, weights

            module.forward = functools.update_wrapper(forward, module.forward)
    was_training = model.training
    try:
        model.eval()
        # With gradients enabled, Transformer layers skip their fused inference path, which
        # would bypass the wrapped attention modules.
        with torch.enable_grad():
            model(spec)
    finally:
        for name, module in model.named_modules():
            if name in originals:
                del module.forward  # back to the class's method
        model.train(was_training)
    return maps

"""Complex spectra as pairs of real tensors while a model is traced to ONNX.

Complex tensors are not ONNX-friendly, so the exported graph takes the noisy STFT as real/imag
channels (B, 2, F, T) and returns the enhanced one the same way. While tracing, the model sees a
`TracedComplex` in place of its complex input, and the complex tensors it builds itself are
redirected to it (`complex_stand_in`); the wrappers here are the modules the exporter traces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from common.errors import UserError


class TracedComplex:
    """Stand-in for a complex tensor while tracing for ONNX: real and imaginary parts as two real
    tensors, so the traced graph holds only real ops.

    Covers what STFT-masking models do with the spectrum (shape queries, |X|, angle, masks real or
    complex, indexing and reshaping); anything else raises a one-line UserError naming the op.
    """

    def __init__(self, re: torch.Tensor, im: torch.Tensor) -> None:
        self.re, self.im = re, im

    # Tensor-like attributes the models query.
    shape = property(lambda self: self.re.shape)
    ndim = property(lambda self: self.re.ndim)
    device = property(lambda self: self.re.device)
    dtype = property(lambda self: torch.complex64)
    real = property(lambda self: self.re)
    imag = property(lambda self: self.im)

    def dim(self) -> int:
        return self.re.dim()

    def size(self, *dim: int) -> torch.Size | int:
        return self.re.size(*dim)

    def is_complex(self) -> bool:
        return True

    def abs(self) -> torch.Tensor:
        return torch.sqrt(self.re * self.re + self.im * self.im)

    def angle(self) -> torch.Tensor:
        return torch.atan2(self.im, self.re)

    def conj(self) -> TracedComplex:
        return TracedComplex(self.re, -self.im)

    def _pair(self, other: object) -> tuple[object, object]:
        if isinstance(other, TracedComplex):
            return other.re, other.im
        if isinstance(other, torch.Tensor) and other.is_complex():
            return other.real, other.imag
        if isinstance(other, complex):
            return other.real, other.imag
        return other, 0.0

    def __mul__(self, other: object) -> TracedComplex:
        ore, oim = self._pair(other)
        if isinstance(oim, float) and oim == 0.0:
            return TracedComplex(self.re * ore, self.im * ore)
        return TracedComplex(self.re * ore - self.im * oim, self.re * oim + self.im * ore)

    __rmul__ = __mul__

    def __add__(self, other: object) -> TracedComplex:
        ore, oim = self._pair(other)
        return TracedComplex(self.re + ore, self.im + oim)

    __radd__ = __add__

    def __sub__(self, other: object) -> TracedComplex:
        ore, oim = self._pair(other)
        return TracedComplex(self.re - ore, self.im - oim)

    def __neg__(self) -> TracedComplex:
        return TracedComplex(-self.re, -self.im)

    def __truediv__(self, other: object) -> TracedComplex:
        if isinstance(other, TracedComplex) or (
            isinstance(other, torch.Tensor) and other.is_complex()
        ):
            raise UserError(
                "ONNX export: complex division is not supported; divide by a real value"
            )
        return TracedComplex(self.re / other, self.im / other)

    def __getitem__(self, index: object) -> TracedComplex:
        return TracedComplex(self.re[index], self.im[index])

    def __getattr__(self, name: str) -> Callable[..., TracedComplex]:
        # Shape-only methods apply to both parts; any other tensor method is not supported.
        if name in (
            "unsqueeze",
            "squeeze",
            "reshape",
            "view",
            "permute",
            "transpose",
            "flatten",
            "contiguous",
            "expand",
            "repeat",
            "flip",
            "roll",
            "narrow",
            "to",
            "detach",
        ):
            return lambda *a, **k: TracedComplex(
                getattr(self.re, name)(*a, **k), getattr(self.im, name)(*a, **k)
            )
        raise UserError(
            f"ONNX export: the model calls .{name}() on the complex spectrum, which the exporter's "
            "complex stand-in does not support; add it to common.onnx_complex.TracedComplex"
        )

    @classmethod
    def __torch_function__(
        cls, func: Callable, types: object, args: tuple = (), kwargs: dict | None = None
    ) -> object:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        first = args[0]
        if name in ("abs", "angle", "conj", "real", "imag") and isinstance(first, TracedComplex):
            value = getattr(first, name)
            return value() if callable(value) else value
        if name in ("mul", "__mul__", "__rmul__", "multiply"):
            a, b = args[0], args[1]
            return a * b if isinstance(a, TracedComplex) else b * a
        if name in ("add", "__add__", "__radd__"):
            a, b = args[0], args[1]
            return a + b if isinstance(a, TracedComplex) else b + a
        if name == "view_as_real":
            return torch.stack((first.re, first.im), dim=-1)
        raise UserError(
            f"ONNX export: the model applies torch.{name} to the complex spectrum, which the "
            "exporter's complex stand-in does not support; add it to common.onnx_complex.TracedComplex"
        )


def _traced_complex(re: torch.Tensor, im: torch.Tensor | None = None) -> TracedComplex:
    if im is None:  # torch.view_as_complex(x) with x (..., 2)
        return TracedComplex(re[..., 0], re[..., 1])
    return TracedComplex(re, im)


class RealSpecWrapper(nn.Module):
    """(B, 2, F, T) real/imag in, (B, 2, F, T) out: the model with ONNX-friendly real tensors.

    The model sees a `TracedComplex`; complex tensors the model builds itself (torch.complex,
    torch.view_as_complex, torch.polar) are redirected to it while this wrapper runs.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with complex_stand_in():
            out = self.model(TracedComplex(x[:, 0], x[:, 1]))
        return real_imag(out)


@contextlib.contextmanager
def complex_stand_in() -> Iterator[None]:
    """While tracing: complex tensors the model builds itself (torch.complex, view_as_complex,
    polar) become `TracedComplex` pairs of real tensors."""
    saved = torch.complex, torch.view_as_complex, torch.polar
    torch.complex, torch.view_as_complex = _traced_complex, _traced_complex
    torch.polar = lambda mag, phase: TracedComplex(mag * torch.cos(phase), mag * torch.sin(phase))
    try:
        yield
    finally:
        torch.complex, torch.view_as_complex, torch.polar = saved


def real_imag(out: object) -> torch.Tensor:
    """A model's complex output (tensor or stand-in) as (B, 2, F, T) real/imag."""
    if isinstance(out, torch.Tensor) and out.is_complex():
        out = TracedComplex(out.real, out.imag)
    if not isinstance(out, TracedComplex):
        raise UserError("ONNX export: the model must return the enhanced complex spectrum")
    return torch.stack((out.re, out.im), dim=1)


class StatefulSpecWrapper(nn.Module):
    """(x (1, 2, F, T), *state) -> (enhanced (1, 2, F, T), *next state): a causal model's
    `forward_stateful` over any number of frames (one, for the streaming step of
    `common.onnx_stream`), with real tensors only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with complex_stand_in():
            out, new_state = self.model.forward_stateful(
                TracedComplex(x[:, 0], x[:, 1]), list(state)
            )
        return (real_imag(out), *new_state)


def complex_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The real model on (B, 2, F, T) real/imag input, with genuine complex tensors."""
    out = model(torch.complex(x[:, 0], x[:, 1]))
    return torch.stack((out.real, out.imag), dim=1)

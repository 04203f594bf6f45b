"""Deployment: dynamic int8 quantization in PyTorch, ONNX export (fp32 / int8), and the ONNX
back-end of the one waveform wrapper (common.enhance.Enhancer), which needs no model code.

The ONNX graph holds the network only: complex tensors are not ONNX-friendly, so the graph takes
the noisy STFT as real/imag channels (B, 2, F, T) and returns the enhanced one the same way, with
a dynamic T axis. The STFT config, model name and whether the model is causal travel as metadata
props; the STFT itself, chunking, resampling and channels are the wrapper's, as for PyTorch.

A causal model's graph also carries the model's state (conv cache, GRU states: `state_i` in,
`next_state_i` out, one channel per run): the wrapper feeds a long spectrum in consecutive runs
of frames, each continuing from the state the previous one left, exactly as `TorchBackend` does.
So `enhance --onnx` equals `--ckpt` and an unchunked run, to float rounding, for any chunk size.
A causal graph exported before the state was added still works, with cross-faded chunks (and
a warning that it differs from `--ckpt` at their edges).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.audio import SAMPLE_RATE, load_audio
from common.config import StftConfig
from common.enhance import (
    DEFAULT_CHUNK_SECONDS,
    Enhancer,
    TorchBackend,
    load_model,
    prepare_output_folder,
    write_atomically,
)
from common.errors import UserError
from common.streaming import is_streamable

ONNX_INPUT = "noisy_spec"
ONNX_OUTPUT = "enhanced_spec"
ONNX_OPSET = 17
ONNX_FORMAT = "speech-enhancement-onnx/1"
# The opsets `export --opset` accepts: the TorchScript exporter's range (the dynamo fallback
# raises anything below 18 to 18).
ONNX_MIN_OPSET = 9
ONNX_MAX_OPSET = 20
STATE_INPUT = "state_{}"
STATE_OUTPUT = "next_state_{}"


def check_opset(opset: int) -> int:
    """`opset` if the exporter can write it, else a one-line UserError (before any tracing)."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise UserError(f"--opset {opset!r}: use a whole number")
    if not ONNX_MIN_OPSET <= opset <= ONNX_MAX_OPSET:
        raise UserError(
            f"--opset {opset}: the exporter writes opsets {ONNX_MIN_OPSET}..{ONNX_MAX_OPSET} "
            f"(default {ONNX_OPSET})"
        )
    return opset


def state_names(n: int) -> tuple[list[str], list[str]]:
    """The graph's state inputs and outputs for a state of `n` tensors."""
    return [STATE_INPUT.format(i) for i in range(n)], [STATE_OUTPUT.format(i) for i in range(n)]


# --- models and quantization -----------------------------------------------------------------


def quantize_torch_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 quantization (weights int8, activations quantized on the fly) of the
    Linear / GRU / LSTM layers, on a copy: convolutions stay fp32 (PyTorch's dynamic scheme
    covers only these layer types)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is not installed here;
        # the eager dynamic path still works on CPU.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear, nn.GRU, nn.LSTM}, dtype=torch.qint8
        )


def torch_model_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as `torch.save` writes it."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


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

    def size(self, *dim: int):
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

    def __getattr__(self, name: str):
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
            "complex stand-in does not support; add it to common.export.TracedComplex"
        )

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
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
            "exporter's complex stand-in does not support; add it to common.export.TracedComplex"
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
def complex_stand_in():
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


def model_metadata(model: nn.Module, stft_cfg: StftConfig, precision: str) -> dict[str, str]:
    try:
        from common.models import model_config_dict

        config = model_config_dict(model)
    except Exception:  # a model outside the registry (tests, experiments) has no config dict
        config = {}
    return {
        "format": ONNX_FORMAT,
        "model_name": str(getattr(model, "name", type(model).__name__)),
        "model_config": json.dumps(config),
        "stft": json.dumps(stft_cfg.to_dict()),
        "precision": precision,
        # Causal models get the stream's zero padding in common.enhance, here as in PyTorch.
        "causal": "true" if is_streamable(model) else "false",
        "input": f"{ONNX_INPUT}: (batch, 2 [real, imag], freq, frames)",
    }


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def _trace_to_onnx(wrapper: nn.Module, n_freq: int, path: Path, opset: int, dynamo: bool) -> None:
    example = torch.randn(1, 2, n_freq, 63)
    stateful = isinstance(wrapper, StatefulSpecWrapper)
    state = list(wrapper.model.init_state(1)) if stateful else []
    state_in, state_out = state_names(len(state))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # The fused Transformer inference kernel has no ONNX translation; trace the plain ops.
    torch.backends.mha.set_fastpath_enabled(False)
    logging.disable(logging.WARNING)  # the dynamo exporter logs about optional packages
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # tracer warnings about shapes known only at runtime
            if dynamo:
                frames = torch.export.Dim("frames", min=2, max=1_000_000)
                shapes = ({3: frames}, *([None] * len(state)))
                kwargs = {"dynamo": True, "dynamic_shapes": shapes, "verbose": False}
                opset = max(opset, 18)  # the dynamo exporter's oldest opset
            else:
                # A stateful graph runs one channel at a time (its state is per channel).
                axes = {3: "frames"} if stateful else {0: "batch", 3: "frames"}
                kwargs = {"dynamo": False, "dynamic_axes": {ONNX_INPUT: axes, ONNX_OUTPUT: axes}}
            torch.onnx.export(
                wrapper,
                (example, *state),
                str(path),
                input_names=[ONNX_INPUT, *state_in],
                output_names=[ONNX_OUTPUT, *state_out],
                opset_version=opset,
                **kwargs,
            )
    finally:
        logging.disable(logging.NOTSET)
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_onnx(
    model: nn.Module,
    stft_cfg: StftConfig,
    out: str | Path,
    *,
    int8: bool = False,
    opset: int = ONNX_OPSET,
) -> Path:
    """Export the network (not the STFT) to ONNX; `int8=True` also quantizes the weights
    dynamically with onnxruntime. The fp32 graph is checked against PyTorch before returning.

    The legacy (TorchScript) exporter goes first: it keeps GRU/LSTM as ONNX RNN ops with a
    dynamic T. Its tracer bakes MultiheadAttention's sizes in, so a model whose check fails at
    another length is exported again with the dynamo exporter (which, in turn, unrolls RNNs).
    """
    check_opset(opset)
    out = Path(out)
    prepare_output_folder(out)  # an unwritable --out fails now, not after the export
    # The wrapper itself in eval mode: the exporter restores the module's mode afterwards, and a
    # wrapper left in train mode would switch the model's dropout/BatchNorm back to training.
    # A causal model carries its state from call to call (see the module docstring).
    wrap = StatefulSpecWrapper if is_streamable(model) else RealSpecWrapper
    wrapper = wrap(copy.deepcopy(model).cpu()).eval()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        for dynamo in (False, True):
            try:
                _trace_to_onnx(wrapper, stft_cfg.n_freq, fp32, opset, dynamo)
                _check_export(wrapper.model, fp32, stft_cfg.n_freq)
                break
            except UserError:
                raise
            except Exception as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                failures.append(f"{'dynamo' if dynamo else 'legacy'} exporter: {reason}")
        else:
            raise UserError(
                f"{out}: ONNX export of model {getattr(model, 'name', '?')!r} failed ("
                + "; ".join(failures)
                + "); try another torch/onnx version or report the model"
            )
        # One self-contained file (the dynamo exporter writes weights to a side file).
        import onnx

        onnx.save(onnx.load(str(fp32)), str(fp32), save_as_external_data=False)
        final = fp32
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = Path(tmp) / "model_int8.onnx"
            logging.disable(logging.WARNING)  # its "consider pre-processing" hint, not ours
            try:
                quantize_dynamic(str(fp32), str(final), weight_type=QuantType.QInt8)
            finally:
                logging.disable(logging.NOTSET)
        set_metadata(final, model_metadata(model, stft_cfg, "int8" if int8 else "fp32"))
        # Renamed into place whole: a kill never leaves a half-written model under `out`.
        with open(final, "rb") as src:
            write_atomically(out, lambda f: shutil.copyfileobj(src, f), overwrite=True)
    return out


class ExportMismatch(RuntimeError):
    """onnxruntime does not reproduce the PyTorch model (a mistranslated op)."""


def _check_export(model: nn.Module, path: Path, n_freq: int) -> None:
    # Against the model with real complex tensors (not the stand-in), at a length different from
    # the export example, which also proves the dynamic T axis works; a stateful graph in two
    # runs of frames, the second continuing from the state the first returned.
    x = torch.randn(1, 2, n_freq, 101)
    with torch.no_grad():
        expected = complex_forward(model, x).numpy()
    session = onnx_session(path, quiet=True)
    n_state = len(session.get_inputs()) - 1
    if n_state:
        state = [s.numpy() for s in model.init_state(1)]
        names = state_names(n_state)[0]
        parts = []
        for chunk in (x[..., :40], x[..., 40:]):
            y, *state = session.run(None, {ONNX_INPUT: chunk.numpy(), **dict(zip(names, state))})
            parts.append(y)
        got = np.concatenate(parts, axis=-1)
    else:
        got = session.run(None, {ONNX_INPUT: x.numpy()})[0]
    err = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected))) or 1.0
    if err > 1e-3 * scale + 1e-4:
        raise ExportMismatch(f"onnxruntime output differs from PyTorch by {err:.2e}")


# --- ONNX inference (onnxruntime; the STFT and the rest are common.enhance's) ---


def onnx_session(path: str | Path, threads: int = 1, quiet: bool = False):
    """An onnxruntime CPU session; `threads=1` gives the single-thread RTF we report."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if quiet:  # failures are reported by the caller, not printed by onnxruntime
        opts.log_severity_level = 4
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if not Path(path).is_file():
            raise UserError(
                f"{path}: ONNX model not found; create it with `python -m common export`"
            ) from None
        if not os.access(path, os.R_OK):
            raise UserError(
                f"{path}: permission denied (this user cannot read it); fix its permissions, "
                "e.g. chmod u+r, or run as its owner"
            ) from None
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{path}: not a loadable ONNX model ({reason}); re-export it") from None


class OnnxBackend:
    """An exported model as a `SpectralBackend` of common.enhance: spectrum in, spectrum out,
    through onnxruntime. A causal model's graph carries its state from call to call (exact in
    runs of frames); any other graph is stateless, so long signals are cross-faded chunks."""

    device = "cpu (onnxruntime)"

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.session = onnx_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != ONNX_FORMAT or "stft" not in meta:
            raise UserError(
                f"{self.path}: no STFT metadata; export it with `python -m common export`"
            )
        self.stft = StftConfig(**json.loads(meta["stft"]))
        self.model_name = meta.get("model_name", "?")
        self.precision = meta.get("precision", "?")
        self.metadata = dict(meta)
        if "causal" in meta:
            self.causal = meta["causal"] == "true"
        else:  # exported before the flag existed: only a causal `lite` streams
            config = json.loads(meta.get("model_config") or "{}")
            self.causal = self.model_name == "lite" and bool(config.get("causal", True))
        self.state_inputs = [i for i in self.session.get_inputs() if i.name != ONNX_INPUT]
        self.carries_state = bool(self.state_inputs)
        if self.causal and not self.carries_state:
            warnings.warn(
                f"{self.path}: exported without the model's state (an older export); long "
                "files are cross-faded chunks that differ from --ckpt at their edges; export "
                "it again with `python -m common export` for the exact result",
                stacklevel=2,
            )
        self.states: list[list[np.ndarray]] | None = None  # per channel

    def reset(self) -> None:
        self.states = None

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        # One channel per run: a graph from the dynamo exporter, and every stateful graph, has a
        # fixed batch of 1.
        x = torch.stack((spec.real, spec.imag), dim=1).numpy().astype(np.float32)
        if not self.carries_state:
            y = np.concatenate([self.session.run(None, {ONNX_INPUT: c[None]})[0] for c in x])
        else:
            if self.states is None:
                self.states = [
                    [np.zeros(i.shape, dtype=np.float32) for i in self.state_inputs] for _ in x
                ]
            outs = []
            for k, c in enumerate(x):
                feeds = {i.name: s for i, s in zip(self.state_inputs, self.states[k])}
                out, *self.states[k] = self.session.run(None, {ONNX_INPUT: c[None], **feeds})
                outs.append(out)
            y = np.concatenate(outs)
        return torch.complex(torch.from_numpy(y[:, 0]), torch.from_numpy(y[:, 1]))


def load_onnx_enhancer(
    path: str | Path, threads: int = 1, *, chunk_seconds: float = DEFAULT_CHUNK_SECONDS
) -> Enhancer:
    """`Enhancer` over an exported ONNX model (`enhance --onnx`); `.backend` holds its metadata."""
    return Enhancer(OnnxBackend(path, threads), chunk_seconds)


# --- benchmark: size, single-thread RTF, quality of each variant ------------------------------


@dataclass
class VariantResult:
    name: str
    size_bytes: int
    rtf: float
    metrics: dict[str, float]  # mean over the pairs
    vs_fp32: dict[str, float]  # mean per-file difference to the fp32 PyTorch model


def real_time_factor(
    enhance: Callable[[np.ndarray, int], np.ndarray], wavs: Sequence[np.ndarray], sr: int
) -> float:
    """Processing time / audio duration over `wavs` (after one warm-up call)."""
    enhance(wavs[0][: sr // 2], sr)
    start = time.perf_counter()
    for w in wavs:
        enhance(w, sr)
    return (time.perf_counter() - start) / (sum(len(w) for w in wavs) / sr)


def benchmark_variants(
    ckpt: str | Path,
    pairs: Sequence[object],
    work_dir: str | Path,
    sr: int = SAMPLE_RATE,
) -> list[VariantResult]:
    """PyTorch fp32 / PyTorch dynamic int8 / ONNX fp32 / ONNX int8 on the same clean/noisy pairs
    (objects with `noisy` and `clean` paths), all on one CPU thread."""
    from common.metrics import score

    if not pairs:
        raise UserError("benchmark needs at least one clean/noisy pair; check the pairs folder")
    work_dir = Path(work_dir)
    model, stft_cfg = load_model(ckpt)
    onnx_fp32 = export_onnx(model, stft_cfg, work_dir / "model_fp32.onnx")
    onnx_int8 = export_onnx(model, stft_cfg, work_dir / "model_int8.onnx", int8=True)
    torch_int8 = quantize_torch_int8(model)
    variants = {
        "pytorch fp32": (Enhancer(TorchBackend(model, stft_cfg)), torch_model_bytes(model)),
        "pytorch int8 (dynamic)": (
            Enhancer(TorchBackend(torch_int8, stft_cfg)),
            torch_model_bytes(torch_int8),
        ),
        "onnx fp32": (load_onnx_enhancer(onnx_fp32), onnx_fp32.stat().st_size),
        "onnx int8": (load_onnx_enhancer(onnx_int8), onnx_int8.stat().st_size),
    }
    cleans = [load_audio(p.clean, sr) for p in pairs]
    noisys = [load_audio(p.noisy, sr) for p in pairs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_file: dict[str, list[dict[str, float]]] = {}
        results = []
        for name, (enhancer, size) in variants.items():
            rtf = real_time_factor(enhancer.enhance, noisys, sr)
            per_file[name] = [score(c, enhancer.enhance(n, sr), sr) for c, n in zip(cleans, noisys)]
            results.append(VariantResult(name, size, rtf, {}, {}))
    finally:
        torch.set_num_threads(threads)
    reference = per_file["pytorch fp32"]
    for r in results:
        rows = per_file[r.name]
        for m in rows[0]:
            vals = np.array([row[m] for row in rows], dtype=np.float64)
            diffs = vals - np.array([row[m] for row in reference], dtype=np.float64)
            r.metrics[m] = float(np.mean(vals))
            r.vs_fp32[m] = float(np.mean(diffs))
    return results


def format_variant_table(results: Sequence[VariantResult], n_pairs: int | None = None) -> str:
    """Markdown table of a benchmark (size, RTF, metrics and their change vs PyTorch fp32)."""
    lines = [
        "| variant | size (KB) | RTF (1 thread) | PESQ | ΔPESQ | STOI | ΔSTOI | SI-SDR (dB) | ΔSI-SDR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m, d = r.metrics, r.vs_fp32
        lines.append(
            f"| {r.name} | {r.size_bytes / 1024:.0f} | {r.rtf:.4f} | {m['pesq']:.3f} | "
            f"{d['pesq']:+.3f} | {m['stoi']:.3f} | {d['stoi']:+.4f} | {m['si_sdr']:.2f} | "
            f"{d['si_sdr']:+.2f} |"
        )
    if n_pairs is not None:
        lines.append(f"\n{n_pairs} pairs; Δ = mean per-file difference to PyTorch fp32.")
    return "\n".join(lines)

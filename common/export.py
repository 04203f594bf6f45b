"""Deployment: dynamic int8 quantization in PyTorch and ONNX export (fp32 / int8).

The graph written here is what `common.onnx_backend` runs (its docstring describes the graph's
inputs, outputs, state and metadata); the model is traced through the real-tensor stand-ins of
`common.onnx_complex`. Every export is checked against PyTorch before it is written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.config import StftConfig
from common.enhance_files import prepare_output_folder, write_atomically
from common.errors import UserError
from common.onnx_backend import (
    ONNX_FORMAT,
    ONNX_INPUT,
    ONNX_OUTPUT,
    onnx_session,
    state_names,
)
from common.onnx_complex import RealSpecWrapper, StatefulSpecWrapper, complex_forward
from common.streaming import is_streamable

ONNX_OPSET = 17
# The opsets `export --opset` accepts: the TorchScript exporter's range (the dynamo fallback
# raises anything below 18 to 18).
ONNX_MIN_OPSET = 9
ONNX_MAX_OPSET = 20


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


def model_metadata(model: nn.Module, stft_cfg: StftConfig, precision: str) -> dict[str, str]:
    """The metadata props `common.onnx_backend` reads back: format, model, STFT, causal."""
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
    """Replace the metadata props of the ONNX file at `path` with `meta`."""
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """No gradients, and none of the exporters' chatter: tracer warnings about shapes known only
    at run time, the dynamo exporter's log lines about optional packages, its printed report.
    The fused Transformer inference kernel is switched off: it has no ONNX translation, so the
    plain ops are traced."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    logging.disable(logging.WARNING)
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _trace_to_onnx(wrapper: nn.Module, n_freq: int, path: Path, opset: int, dynamo: bool) -> None:
    example = torch.randn(1, 2, n_freq, 63)
    stateful = isinstance(wrapper, StatefulSpecWrapper)
    state = list(wrapper.model.init_state(1)) if stateful else []
    state_in, state_out = state_names(len(state))
    with quiet_tracing():
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

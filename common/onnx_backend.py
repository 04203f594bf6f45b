"""An exported ONNX model behind the one waveform wrapper (`common.enhance.Enhancer`): what
`enhance --onnx` runs, with onnxruntime and no model code.

The graph holds the network only: it takes the noisy STFT as real/imag channels (B, 2, F, T) and
returns the enhanced one the same way, with a dynamic T axis. The STFT config, model name and
whether the model is causal travel as metadata props (written by `common.export`); the STFT
itself, chunking, resampling and channels are the wrapper's, as for PyTorch.

A causal model's graph also carries the model's state (conv cache, GRU states: `state_i` in,
`next_state_i` out, one channel per run): the wrapper feeds a long spectrum in consecutive runs
of frames, each continuing from the state the previous one left, exactly as `TorchBackend` does.
So `enhance --onnx` equals `--ckpt` and an unchunked run, to float rounding, for any chunk size.
A causal graph exported before the state was added still works, with cross-faded chunks (and
a warning that it differs from `--ckpt` at their edges).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from common.config import StftConfig
from common.enhance import DEFAULT_CHUNK_SECONDS, Enhancer
from common.errors import UserError

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

# The graph's interface, shared by the exporters (common.export, common.onnx_stream).
ONNX_INPUT = "noisy_spec"
ONNX_OUTPUT = "enhanced_spec"
ONNX_FORMAT = "speech-enhancement-onnx/1"
STATE_INPUT = "state_{}"
STATE_OUTPUT = "next_state_{}"


def state_names(n: int) -> tuple[list[str], list[str]]:
    """The graph's state inputs and outputs for a state of `n` tensors."""
    return [STATE_INPUT.format(i) for i in range(n)], [STATE_OUTPUT.format(i) for i in range(n)]


def onnx_session(path: str | Path, threads: int = 1, quiet: bool = False) -> InferenceSession:
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

"""Enhance audio with a trained model: any sample rate, mono or multichannel, any length.

One waveform path serves every back-end. `Enhancer(backend).enhance(wav, sr)` returns audio of
the shape and rate of its input: the channels are resampled to the model's rate, turned into
their STFT, passed through the back-end (complex spectrum in, complex spectrum out), turned back
and resampled to `sr`. Back-ends: `TorchBackend` here (a PyTorch model), `OnnxBackend` in
common.onnx_backend (an exported graph, no model code) and `StreamingBackend` in common.streaming (the
model one frame at a time). The VAD gate (common.vad_gate.VadGatedEnhancer) wraps an `Enhancer`.

Long signals: a back-end that carries its state from call to call (a causal model) gets the
spectrum in consecutive runs of frames, which is exact (equal to one pass) in bounded memory;
any other back-end gets overlapping waveform chunks, cross-faded linearly.

Padding: a causal back-end sees the STFT a stream sees, zeros before the first sample and after
the last (`stft(pad_mode="constant")`), not the mirrored samples of torch.stft's default that a
stream cannot know; so `enhance` and `enhance --streaming` agree to float rounding on whole
files. Non-causal models keep the mirrored padding.

`load_model(ckpt)` is the one way a checkpoint becomes a model: the recorded name, config, STFT
and weights must fit together, or a one-line error names the file. Files and folders:
common.enhance_files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from common.audio import (
    StftConfig,
    istft,
    resample,
    stft,
)
from common.env import select_device
from common.errors import UserError
from common.streaming import is_streamable

# Chunks only bound memory; shorter ones than this would be mostly cross-fade, and longer ones
# than the maximum would not bound it (a 10-minute chunk takes several GB).
MIN_CHUNK_SECONDS = 1.0
MAX_CHUNK_SECONDS = 120.0
DEFAULT_CHUNK_SECONDS = 30.0


def _state_dict_mismatch(model: nn.Module, weights: dict) -> str:
    """A short description of why `weights` do not load into `model` ("" when they do)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(weights))
        if tuple(own[k].shape) != tuple(weights[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            parts.append(
                f"{len(items)} {label} ({', '.join(items[:2])}{', ...' if len(items) > 2 else ''})"
            )
    return "; ".join(parts)


def check_chunk_seconds(seconds: float) -> float:
    """`seconds` if it is a usable chunk length (MIN_CHUNK_SECONDS..MAX_CHUNK_SECONDS), else a
    UserError."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not (math.isfinite(seconds) and MIN_CHUNK_SECONDS <= seconds <= MAX_CHUNK_SECONDS)
    ):
        raise UserError(
            f"--chunk-seconds {seconds}: use a number of seconds from {MIN_CHUNK_SECONDS:g} to "
            f"{MAX_CHUNK_SECONDS:g} (default {DEFAULT_CHUNK_SECONDS:g}); it only bounds memory"
        )
    return seconds


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """`y` cut or zero-padded to `n` samples on its last axis (resampling can be a sample off)."""
    if y.shape[-1] >= n:
        return y[..., :n]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])])


class SpectralBackend(Protocol):
    """A model behind `Enhancer`: complex spectrum (C, F, T) in, enhanced (C, F, T) out, on CPU.

    `causal`: the model never looks ahead, so it gets stream (zero) padding. `carries_state`:
    consecutive calls continue one signal from the last `reset()`, so a long spectrum can be fed
    in runs of frames instead of cross-faded chunks.
    """

    stft: StftConfig
    model_name: str
    device: str
    causal: bool
    carries_state: bool

    def reset(self) -> None: ...

    def __call__(self, spec: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    """A PyTorch model (fp32 or dynamically quantized) as a `SpectralBackend`; a streamable
    model (causal, `forward_stateful`) carries its state from call to call."""

    def __init__(
        self, model: nn.Module, stft_cfg: StftConfig, device: torch.device | str = "cpu"
    ) -> None:
        self.torch_device = torch.device(device)
        self.model = model.to(self.torch_device).eval()
        self.stft = stft_cfg
        self.model_name = str(getattr(model, "name", type(model).__name__))
        self.device = str(self.torch_device)
        self.causal = self.carries_state = is_streamable(model)
        self.state: list | None = None

    def reset(self) -> None:
        self.state = None

    @torch.inference_mode()
    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        spec = spec.to(self.torch_device)
        if self.carries_state:
            if self.state is None:
                self.state = self.model.init_state(spec.shape[0], self.torch_device)
            out, self.state = self.model.forward_stateful(spec, self.state)
        else:
            out = self.model(spec)
        return out.to(torch.complex64).cpu()


@dataclass
class Enhancer:
    """The one waveform wrapper: `enhance(wav, sr)` keeps shape, length and rate (see above)."""

    backend: SpectralBackend
    chunk_seconds: float = (
        DEFAULT_CHUNK_SECONDS  # longer inputs are processed in chunks (memory stays bounded)
    )
    overlap_seconds: float = 0.5  # stateless back-ends: chunks overlap by this and are cross-faded

    def __post_init__(self) -> None:
        check_chunk_seconds(self.chunk_seconds)
        if not (math.isfinite(self.overlap_seconds) and self.overlap_seconds >= 0):
            raise UserError(f"overlap_seconds={self.overlap_seconds}: must be >= 0")

    @property
    def stft(self) -> StftConfig:
        return self.backend.stft

    @property
    def sample_rate(self) -> int:
        return self.backend.stft.sample_rate

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def device(self) -> str:
        return self.backend.device

    def _one_pass(self, x: np.ndarray) -> np.ndarray:
        """(C, N) at the model rate -> (C, N): STFT, the back-end from a fresh state, ISTFT."""
        cfg, n = self.stft, x.shape[-1]
        if self.backend.causal:
            # Zeros on both sides, as a stream has; the extra half window at the end lets the
            # frames that a stream computes for the last samples exist offline too.
            padded, mode = np.pad(x, ((0, 0), (0, cfg.n_fft // 2))), "constant"
        else:
            # Mirrored padding needs more than half a window: very short clips get zeros appended.
            padded, mode = np.pad(x, ((0, 0), (0, max(0, cfg.n_fft - n)))), "reflect"
        spec = stft(torch.from_numpy(np.ascontiguousarray(padded)), cfg, pad_mode=mode)
        self.backend.reset()
        if self.backend.carries_state:
            step = max(1, int(self.chunk_seconds * cfg.sample_rate / cfg.hop_length))
            out = torch.empty_like(spec, dtype=torch.complex64)
            for i in range(0, spec.shape[-1], step):
                out[..., i : i + step] = self.backend(spec[..., i : i + step])
        else:
            out = self.backend(spec)
        return istft(out, cfg, padded.shape[-1])[:, :n].numpy()

    def _enhance_channels(self, x: np.ndarray) -> np.ndarray:
        """(C, N) -> (C, N); a stateless back-end gets overlapping chunks faded into each other."""
        n = x.shape[-1]
        size = max(int(self.chunk_seconds * self.sample_rate), self.stft.n_fft)
        if self.backend.carries_state or n <= size:
            return self._one_pass(x)
        overlap = min(int(self.overlap_seconds * self.sample_rate), size // 2)
        out = np.zeros_like(x)
        weight = np.zeros(n, dtype=np.float32)
        ramp = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        start = 0
        while True:
            end = min(start + size, n)
            w = np.ones(end - start, dtype=np.float32)
            if start > 0:
                w[:overlap] = ramp
            if end < n:
                w[-overlap:] = ramp[::-1]
            out[:, start:end] += self._one_pass(x[:, start:end]) * w
            weight[start:end] += w
            if end == n:
                break
            start = end - overlap
        return out / weight

    def enhance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Enhance (N,) or (N, channels) audio at rate `sr`; the result has the same shape and rate."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim not in (1, 2) or wav.shape[0] == 0:
            raise UserError(
                f"enhance: expected (samples,) or (samples, channels) audio, got shape {wav.shape}"
            )
        if not np.all(np.isfinite(wav)):
            raise UserError(
                "enhance: input has NaN or infinite samples; fix or re-export the audio"
            )
        channels = wav.reshape(wav.shape[0], -1).T  # (C, N): all channels in one batch
        x = np.stack([resample(c, sr, self.sample_rate) for c in channels])
        y = self._enhance_channels(x)
        out = fit_length(np.stack([resample(c, self.sample_rate, sr) for c in y]), wav.shape[0])
        return out[0] if wav.ndim == 1 else np.ascontiguousarray(out.T)


def load_model(
    ckpt_path: str | Path,
    device: torch.device | str = "cpu",
    *,
    expect_model: str | None = None,
) -> tuple[nn.Module, StftConfig]:
    """The checkpoint's model (eval mode, on `device`) and its STFT; every mismatch between the
    recorded name, config, STFT and weights is refused in one line naming the file."""
    # Imported here: the ONNX path (common.onnx_backend) uses this module without any model code.
    from common.checkpoint import load_checkpoint
    from common.models import build_model

    path = Path(ckpt_path)
    state = load_checkpoint(path)
    name, config = state["model_name"], state["model_config"]
    if expect_model is not None and name != expect_model:
        raise UserError(
            f"{path}: checkpoint is for model {name!r}, not {expect_model!r}; "
            "use a checkpoint of that model or drop --model"
        )
    try:
        stft_cfg = StftConfig(**state["stft"])
        model = build_model(name, **config)
    except (UserError, TypeError) as exc:
        raise UserError(f"{path}: cannot rebuild the model it records ({exc})") from None
    n_freq = getattr(getattr(model, "cfg", None), "n_freq", stft_cfg.n_freq)
    if n_freq != stft_cfg.n_freq:
        raise UserError(
            f"{path}: model config n_freq={n_freq} does not match its STFT (n_fft={stft_cfg.n_fft} "
            f"gives {stft_cfg.n_freq} bins); the checkpoint mixes two configs, retrain it"
        )
    mismatch = _state_dict_mismatch(model, state["model"])
    if mismatch:
        raise UserError(
            f"{path}: weights do not fit model {name!r} with its recorded config ({mismatch}); "
            "the checkpoint comes from another model or config"
        )
    model.load_state_dict(state["model"])
    return model.to(device).eval(), stft_cfg


def load_enhancer(
    ckpt_path: str | Path,
    device: torch.device | str | None = None,
    *,
    expect_model: str | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
) -> Enhancer:
    """`Enhancer` over the checkpoint's PyTorch model (device: auto-selected when None)."""
    check_chunk_seconds(chunk_seconds)
    device = torch.device(device) if device is not None else select_device("auto")
    model, stft_cfg = load_model(ckpt_path, device, expect_model=expect_model)
    return Enhancer(TorchBackend(model, stft_cfg, device), chunk_seconds)

"""Voice activity detection with Silero VAD: speech probabilities per frame and speech segments.

Silero's model files ship inside the `silero-vad` package and are loaded from there, never from
a hub. We use its batched ("sequence") ONNX model: numpy + onnxruntime only, one call per ~16 s
block, bit-exact with the streaming model. Silero works on 32 ms frames (512 samples) at 16 kHz;
other rates are resampled for detection and the segments mapped back to the caller's rate.
The gate built on it is `common.vad_gate`, the speech-aware scores `common.speech_aware`, its
figure `common.plots.plot_vad`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.audio import SAMPLE_RATE, resample
from common.config import VadConfig
from common.errors import UserError

VAD_FRAME_SAMPLES = 512  # Silero's fixed window at 16 kHz (32 ms)
VAD_MODEL_FILE = "silero_vad_16k_sequence.onnx"
VAD_INSTALL_HINT = (
    "install it with `.venv/bin/pip install --no-deps 'silero-vad>=5,<7'` (make setup)"
)


@dataclass
class VadResult:
    """Speech probabilities per 32 ms frame and speech segments in samples at `sr`."""

    probs: np.ndarray
    segments: list[tuple[int, int]]
    n_samples: int
    sr: int = SAMPLE_RATE

    @property
    def frame_seconds(self) -> float:
        return VAD_FRAME_SAMPLES / SAMPLE_RATE

    def mask(self) -> np.ndarray:
        """Boolean speech mask, one value per sample."""
        mask = np.zeros(self.n_samples, dtype=bool)
        for start, end in self.segments:
            mask[start:end] = True
        return mask

    @property
    def speech_fraction(self) -> float:
        return float(self.mask().mean()) if self.n_samples else 0.0

    def segments_seconds(self) -> list[tuple[float, float]]:
        return [(s / self.sr, e / self.sr) for s, e in self.segments]


@functools.lru_cache(maxsize=1)
def load_vad_model() -> object:
    """Silero's sequence ONNX model from the installed package (cached per process)."""
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"silero-vad is not installed: {VAD_INSTALL_HINT}")
    model_path = Path(next(iter(spec.submodule_search_locations))) / "data" / VAD_MODEL_FILE
    if not model_path.is_file():
        raise UserError(
            f"{model_path}: Silero VAD model file missing from the silero-vad package; "
            f"reinstall it ({VAD_INSTALL_HINT})"
        )
    sequence_cls, _ = _silero_api()
    return sequence_cls(str(model_path), sampling_rate=SAMPLE_RATE)


@functools.lru_cache(maxsize=1)
def _silero_api() -> tuple[type, Callable]:
    # Importing silero_vad calls torch.set_num_threads(1) as a side effect; undo it so training
    # and enhancement in the same process keep their threads.
    threads = torch.get_num_threads()
    try:
        from silero_vad.sequence_vad import SileroVADSequence
        from silero_vad.utils_vad import get_speech_timestamps_from_probs
    except ImportError as exc:
        raise UserError(f"silero-vad cannot be imported ({exc}): {VAD_INSTALL_HINT}") from None
    finally:
        torch.set_num_threads(threads)
    return SileroVADSequence, get_speech_timestamps_from_probs


def speech_probabilities(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Silero's speech probability per 32 ms frame (of the 16 kHz version of `wav`)."""
    wav16 = resample(np.asarray(wav, dtype=np.float32).reshape(-1), sr, SAMPLE_RATE)
    if wav16.size == 0:
        return np.zeros(0, dtype=np.float32)
    return load_vad_model().audio_forward(np.ascontiguousarray(wav16), sampling_rate=SAMPLE_RATE)


def vad_from_probs(
    probs: np.ndarray, n_samples: int, sr: int = SAMPLE_RATE, cfg: VadConfig | None = None
) -> VadResult:
    """Segments from frame probabilities with Silero's hysteresis, padding and minimum lengths."""
    _, get_speech_timestamps_from_probs = _silero_api()
    cfg = cfg or VadConfig()
    n16 = int(round(n_samples * SAMPLE_RATE / sr))
    stamps = get_speech_timestamps_from_probs(
        [float(p) for p in probs],
        sampling_rate=SAMPLE_RATE,
        threshold=cfg.threshold,
        min_speech_duration_ms=cfg.min_speech_ms,
        min_silence_duration_ms=cfg.min_silence_ms,
        speech_pad_ms=cfg.speech_pad_ms,
        audio_length_samples=n16,
    )
    scale = sr / SAMPLE_RATE
    segments = [
        (
            min(n_samples, int(round(s["start"] * scale))),
            min(n_samples, int(round(s["end"] * scale))),
        )
        for s in stamps
    ]
    return VadResult(np.asarray(probs, dtype=np.float32), segments, n_samples, sr)


def detect_speech(
    wav: np.ndarray,
    sr: int = SAMPLE_RATE,
    cfg: VadConfig | None = None,
    *,
    union_with: Sequence[np.ndarray] = (),
) -> VadResult:
    """Speech segments of `wav`; with `union_with` (same length and rate), a frame is speech when
    any of the signals says so (e.g. noisy input and enhanced output: never cut speech that only
    one of them shows)."""
    probs = speech_probabilities(wav, sr)
    for other in union_with:
        p = speech_probabilities(other, sr)
        n = min(len(p), len(probs))
        probs = np.maximum(probs[:n], p[:n])
    return vad_from_probs(probs, len(wav), sr, cfg)

"""Voice activity detection with Silero VAD: speech-aware evaluation, VAD-gated output, plots.

Silero's model files ship inside the `silero-vad` package and are loaded from there, never from
a hub. We use its batched ("sequence") ONNX model: numpy + onnxruntime only, one call per ~16 s
block, bit-exact with the streaming model. Silero works on 32 ms frames (512 samples) at 16 kHz;
other rates are resampled for detection and the segments mapped back to the caller's rate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from common.audio import SAMPLE_RATE, load_audio, resample
from common.checks import number
from common.config import StftConfig
from common.enhance import Enhancer
from common.errors import UserError
from common.metric_names import METRIC_NAMES
from common.metrics import MetricError, score
from common.plots import _db_spectrogram, _save_figure

VAD_FRAME_SAMPLES = 512  # Silero's fixed window at 16 kHz (32 ms)
VAD_MODEL_FILE = "silero_vad_16k_sequence.onnx"
VAD_INSTALL_HINT = (
    "install it with `.venv/bin/pip install --no-deps 'silero-vad>=5,<7'` (make setup)"
)
VAD_METRICS = METRIC_NAMES  # speech-aware versions of the reference metrics


MIN_FLOOR_DB = -120.0
MAX_GATE_MS = 10_000.0


@dataclass
class VadConfig:
    """Silero's decision settings (its own defaults)."""

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30

    def __post_init__(self) -> None:
        number("vad.threshold", self.threshold, 0, 1, lo_open=True, hi_open=True)
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            number(f"vad.{name}", getattr(self, name), 0, MAX_GATE_MS, whole=True)


@dataclass
class GateConfig:
    """VAD gating: non-speech is attenuated to `floor_db`, with raised-cosine fades of `fade_ms`
    placed outside the speech segments so speech itself is never attenuated."""

    floor_db: float = -20.0
    fade_ms: float = 60.0
    vad: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self) -> None:
        # floor_db is an attenuation in dB (0: none); fades longer than a few seconds are not
        # fades any more.
        number("vad.floor_db", self.floor_db, MIN_FLOOR_DB, 0)
        number("vad.fade_ms", self.fade_ms, 0, MAX_GATE_MS)


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
def load_vad_model():
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


def gate_gain(vad: VadResult, cfg: GateConfig | None = None) -> np.ndarray:
    """Per-sample gain: 1 in speech, `floor_db` in non-speech, raised-cosine fades in between.

    The fade depends on the distance to the nearest speech sample, so it is continuous (no
    clicks) and only ever lowers non-speech.
    """
    cfg = cfg or GateConfig()
    floor = 10 ** (cfg.floor_db / 20)
    mask = vad.mask()
    if mask.all():
        return np.ones(vad.n_samples, dtype=np.float32)
    if not mask.any():
        return np.full(vad.n_samples, floor, dtype=np.float32)
    distance = distance_transform_edt(~mask)
    fade = max(cfg.fade_ms / 1000 * vad.sr, 1.0)
    ramp = 0.5 * (1 + np.cos(np.pi * np.minimum(distance / fade, 1.0)))
    return (floor + (1 - floor) * ramp).astype(np.float32)


def apply_vad_gate(
    wav: np.ndarray,
    sr: int = SAMPLE_RATE,
    cfg: GateConfig | None = None,
    *,
    vad: VadResult | None = None,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, VadResult]:
    """Attenuate the non-speech parts of `wav` (typically the enhanced output).

    Detection uses `vad` when given, else `wav` together with `reference` (the noisy input) when
    given. Returns the gated signal and the VAD used.
    """
    cfg = cfg or GateConfig()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if vad is None:
        union = () if reference is None else (np.asarray(reference, np.float32)[: len(wav)],)
        vad = detect_speech(wav, sr, cfg.vad, union_with=union)
    if vad.n_samples != len(wav):
        raise UserError(
            f"VAD covers {vad.n_samples} samples but the signal has {len(wav)}; detect on this signal"
        )
    return (wav * gate_gain(vad, cfg)).astype(np.float32), vad


class VadGatedEnhancer:
    """The VAD gate as one more wrapper around a `common.enhance.Enhancer` (any back-end):
    what `enhance --vad` runs. Same interface: `enhance(wav, sr)`, `model_name`, `device`.

    Each channel is gated with the VAD of its own noisy input and enhanced output (union).
    """

    def __init__(self, enhancer: Enhancer, cfg: GateConfig | None = None) -> None:
        self.enhancer = enhancer
        self.gate = cfg or GateConfig()

    @property
    def model_name(self) -> str:
        return self.enhancer.model_name

    @property
    def device(self) -> str:
        return f"{self.enhancer.device} + VAD gate"

    def enhance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        out = np.asarray(self.enhancer.enhance(wav, sr), dtype=np.float32)
        if out.ndim == 1:
            return apply_vad_gate(out, sr, self.gate, reference=wav)[0]
        gated = [
            apply_vad_gate(out[:, c], sr, self.gate, reference=wav[:, c])[0]
            for c in range(out.shape[1])
        ]
        return np.ascontiguousarray(np.stack(gated, axis=1))


def level_db(wav: np.ndarray) -> float:
    """Mean power in dB relative to full scale (-inf for an empty or silent region)."""
    if wav.size == 0:
        return float("nan")
    power = float(np.mean(np.square(wav, dtype=np.float64)))
    return 10 * math.log10(power) if power > 0 else float("-inf")


def region_levels(wav: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Level in speech and non-speech regions, and their difference (higher: less noise left).

    Needs no reference, so it applies to noisy-only recordings too. NaN means the region is
    empty (all speech or no speech), never a failed measurement.
    """
    speech, nonspeech = level_db(wav[mask]), level_db(wav[~mask])
    gap = speech - nonspeech if math.isfinite(speech) and math.isfinite(nonspeech) else float("nan")
    return {"speech_db": speech, "nonspeech_db": nonspeech, "speech_to_nonspeech_db": gap}


def speech_only(wav: np.ndarray, vad: VadResult) -> np.ndarray:
    """The speech segments of `wav`, concatenated."""
    parts = [wav[s:e] for s, e in vad.segments if e > s]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _score_into(
    row: dict[str, object], key: str, clean: np.ndarray, est: np.ndarray, sr: int
) -> None:
    # A metric that cannot be computed (e.g. too little speech for PESQ) is recorded with its
    # reason under "failures" and left out of the means: never a silent NaN, never a crash.
    try:
        for metric, value in score(clean, est, sr).items():
            row[f"{key}_{metric}"] = value
    except MetricError as exc:
        row["failures"] = "; ".join(filter(None, [str(row.get("failures", "")), f"{key}: {exc}"]))


def speech_aware_row(
    clean: np.ndarray,
    signals: Mapping[str, np.ndarray],
    sr: int = SAMPLE_RATE,
    cfg: VadConfig | None = None,
) -> dict[str, object]:
    """Metrics of each signal against `clean`, on the whole file and on speech regions only,
    plus the residual level in non-speech regions.

    Speech regions come from the VAD on the clean reference (where speech really is). Keys:
    `{signal}_{metric}`, `{signal}_speech_{metric}`, `{signal}_nonspeech_db` and
    `{signal}_nonspeech_rel_db` (non-speech level minus the clean speech level: how far below
    the speech the leftover noise sits; lower is better), and `failures` when a metric could
    not be computed.
    """
    clean = np.asarray(clean, dtype=np.float32)
    vad = detect_speech(clean, sr, cfg)
    mask = vad.mask()
    clean_speech = speech_only(clean, vad)
    clean_level = level_db(clean[mask]) if mask.any() else float("nan")
    row: dict[str, object] = {"speech_fraction": vad.speech_fraction}
    for name, sig in signals.items():
        sig = np.asarray(sig, dtype=np.float32)[: len(clean)]
        _score_into(row, name, clean, sig, sr)
        if clean_speech.size:
            _score_into(row, f"{name}_speech", clean_speech, speech_only(sig, vad), sr)
        nonspeech = level_db(sig[~mask])
        row[f"{name}_nonspeech_db"] = nonspeech
        row[f"{name}_nonspeech_rel_db"] = nonspeech - clean_level
    return row


@dataclass
class SpeechAwareResult:
    rows: list[dict[str, object]]
    summary: dict[str, dict[str, float]]

    @property
    def failures(self) -> list[str]:
        """`file: signal: reason` for every metric that could not be computed."""
        return [f"{r['name']}: {r['failures']}" for r in self.rows if r.get("failures")]


def summarize_rows(rows: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float]]:
    """Mean / std / n of every numeric column over the finite values."""
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("name", "failures")))
    summary = {}
    for k in keys:
        vals = np.array(
            [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))], dtype=np.float64
        )
        vals = vals[np.isfinite(vals)]
        summary[k] = {
            "mean": float(vals.mean()) if vals.size else float("nan"),
            "std": float(vals.std()) if vals.size else float("nan"),
            "n": int(vals.size),
        }
    return summary


def evaluate_speech_aware(
    pairs: Sequence[object],
    enhance_fn: Callable[[np.ndarray, int], np.ndarray],
    gate: GateConfig | None = None,
    sr: int = SAMPLE_RATE,
) -> SpeechAwareResult:
    """Noisy vs enhanced vs VAD-gated enhanced on clean/noisy pairs (objects with `name`, `noisy`,
    `clean` paths, e.g. common.pairs.AudioPair): does gating help, and where?"""
    gate = gate or GateConfig()
    rows: list[dict[str, object]] = []
    for pair in pairs:
        clean = load_audio(pair.clean, sr)
        noisy = load_audio(pair.noisy, sr)
        n = min(len(clean), len(noisy))
        clean, noisy = clean[:n], noisy[:n]
        enhanced = np.asarray(enhance_fn(noisy, sr), dtype=np.float32)[:n]
        gated, _ = apply_vad_gate(enhanced, sr, gate, reference=noisy)
        row: dict[str, object] = {"name": pair.name}
        row.update(
            speech_aware_row(clean, {"noisy": noisy, "enhanced": enhanced, "gated": gated}, sr)
        )
        rows.append(row)
    return SpeechAwareResult(rows, summarize_rows(rows))


def format_speech_aware_table(summary: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown table: one row per signal, whole-file and speech-only metrics, residual noise."""
    cols = [(m, m) for m in VAD_METRICS]
    cols += [(f"speech_{m}", f"{m} (speech)") for m in VAD_METRICS]
    cols += [("nonspeech_rel_db", "non-speech level (dB re speech)")]
    lines = [
        "| signal | " + " | ".join(label for _, label in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for signal in ("noisy", "enhanced", "gated"):
        cells = []
        for key, _ in cols:
            stat = summary.get(f"{signal}_{key}")
            cells.append("n/a" if not stat or not stat["n"] else f"{stat['mean']:.3f}")
        lines.append(f"| {signal} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_vad(
    signals: Mapping[str, np.ndarray] | np.ndarray,
    vad: VadResult | None = None,
    sr: int = SAMPLE_RATE,
    gain: np.ndarray | None = None,
    title: str | None = None,
    path: str | Path | None = None,
) -> plt.Figure:
    """Spectrogram of each signal with the VAD timeline on top: speech probability per frame,
    detected segments shaded, and the gate gain when given. The VAD is computed on the first
    signal when not given."""
    if isinstance(signals, np.ndarray):
        signals = {"audio": signals}
    first = next(iter(signals.values()))
    vad = vad or detect_speech(first, sr)
    cfg = StftConfig(sample_rate=sr)
    fig, axes = plt.subplots(
        len(signals), 1, figsize=(10, 2.6 * len(signals)), squeeze=False, sharex=True
    )
    specs = {k: _db_spectrogram(v, cfg) for k, v in signals.items()}
    vmax = max(float(s.max()) for s in specs.values())
    frame_t = (np.arange(len(vad.probs)) + 0.5) * vad.frame_seconds
    for ax, (name, spec) in zip(axes[:, 0], specs.items()):
        dur = len(signals[name]) / sr
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - 80,
            vmax=vmax,
            extent=(0, dur, 0, sr / 2000),
        )
        ax.set_ylabel(f"{name}\nkHz")
        top = ax.twinx()
        for i, (start, end) in enumerate(vad.segments_seconds()):
            top.plot(
                [start, end],
                [1.07, 1.07],
                color="lime",
                lw=5,
                solid_capstyle="butt",
                label="speech segment" if i == 0 else None,
            )
        top.plot(frame_t, vad.probs, color="cyan", lw=1.2, label="speech probability")
        if gain is not None:
            t = np.arange(len(gain)) / sr
            step = max(1, len(gain) // 4000)
            top.plot(t[::step], gain[::step], color="yellow", lw=1.0, ls="--", label="gate gain")
        top.set_ylim(0, 1.1)
        top.set_ylabel("p(speech)")
    axes[0, 0].set_title(
        title or f"VAD: {vad.speech_fraction:.0%} speech, {len(vad.segments)} segments"
    )
    axes[-1, 0].set_xlabel("time (s)")
    handles, labels = top.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save_figure(fig, path)

"""Speech-aware evaluation: metrics on the whole file and on the speech regions only (found by
the VAD on the clean reference), and the level of the noise left in non-speech; noisy vs
enhanced vs VAD-gated enhanced (`evaluate_speech_aware`, the VAD notebook's table)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.audio import SAMPLE_RATE, load_audio
from common.config import GateConfig, VadConfig
from common.metric_names import METRIC_NAMES
from common.metrics import MetricError, score
from common.vad import VadResult, detect_speech
from common.vad_gate import apply_vad_gate

VAD_METRICS = METRIC_NAMES  # speech-aware versions of the reference metrics


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

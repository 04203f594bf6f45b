"""Speech metrics computed from waveforms only: PESQ-wb, STOI, ESTOI and SI-SDR, and DNSMOS.

Every number here comes from a clean reference waveform and an estimate waveform (the team once
reported a PESQ "estimated" by a formula; that must be impossible), except DNSMOS
(`common.dnsmos`), which predicts listeners' scores from the signal alone: the one measure for
recordings without a clean reference, and an extra column beside the others. A metric that
cannot be computed for a file (silence, a clip shorter than PESQ's 0.25 s, NaN samples, an
unreadable file) is recorded with its reason and left out of that metric's mean: never a crash,
never a zero.

`score` gives every metric of one estimate; `common.evaluation` scores whole folders with them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from pystoi import utils as pystoi_utils
from pystoi.stoi import BETA as STOI_BETA
from pystoi.stoi import DYN_RANGE as STOI_DYN_RANGE
from pystoi.stoi import FS as STOI_FS
from pystoi.stoi import N_FRAME as STOI_FRAME
from pystoi.stoi import NFFT as STOI_NFFT
from pystoi.stoi import OBM as STOI_OCTAVE_BANDS
from pystoi.stoi import N as STOI_SEGMENT_FRAMES

from common.audio import SAMPLE_RATE, SILENCE_RMS, resample
from common.errors import UserError
from common.metric_names import METRIC_NAMES

PESQ_WB_MAX = 4.644  # PESQ-wb of a signal scored against itself
# SI-SDR is +-inf for an exact copy / an orthogonal estimate; clamp the energy ratio at +-150 dB.
SI_SDR_LIMIT_RATIO = 1e-15


class MetricError(UserError):
    """A metric that is undefined for the given signals (silence, too short, NaN samples)."""


def scorable(wav: np.ndarray, role: str) -> np.ndarray:
    """Float64 1-D copy, refused when it cannot be scored (NaN or silence)."""
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if wav.size == 0:
        raise MetricError(f"{role} has no samples")
    if not np.all(np.isfinite(wav)):
        raise MetricError(f"{role} contains NaN or infinite samples")
    if np.sqrt(np.mean((wav - wav.mean()) ** 2)) < SILENCE_RMS:
        raise MetricError(f"{role} is silent (RMS below -100 dBFS)")
    return wav


def _check_metric_lengths(ref: np.ndarray, est: np.ndarray, metric: str) -> None:
    if ref.shape != est.shape:
        raise MetricError(
            f"{metric}: reference has {ref.size} samples and estimate {est.size}; "
            "crop both to the same length"
        )


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB (both signals made zero-mean first, so a DC offset is ignored)."""
    ref = scorable(ref, "reference")
    est = scorable(est, "estimate")
    _check_metric_lengths(ref, est, "si_sdr")
    ref = ref - ref.mean()
    est = est - est.mean()
    target = (np.dot(est, ref) / np.dot(ref, ref)) * ref
    target_energy = float(np.dot(target, target))
    residual = est - target
    residual_energy = float(np.dot(residual, residual))
    total = target_energy + residual_energy
    target_energy = max(target_energy, SI_SDR_LIMIT_RATIO * total)
    residual_energy = max(residual_energy, SI_SDR_LIMIT_RATIO * total)
    return 10.0 * math.log10(target_energy / residual_energy)


def _pesq_reason(exc: Exception) -> str:
    # The pesq C extension puts bytes in its messages: b'No utterances detected'.
    arg = exc.args[0] if exc.args else ""
    text = arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def pesq_wb(ref: np.ndarray, est: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2, 1.04..4.64); signals at other rates are resampled to 16 kHz."""
    ref = scorable(ref, "reference")
    est = scorable(est, "estimate")
    _check_metric_lengths(ref, est, "pesq")
    if sr != SAMPLE_RATE:
        ref = resample(ref, sr, SAMPLE_RATE).astype(np.float64)
        est = resample(est, sr, SAMPLE_RATE).astype(np.float64)
    # Imported here: training (which never scores PESQ) then runs where pesq is not installed.
    import pesq as pesq_lib

    try:
        return float(pesq_lib.pesq(SAMPLE_RATE, ref, est, "wb"))
    except (pesq_lib.PesqError, ValueError) as exc:
        # ValueError: the C code returns NaN for some degenerate inputs instead of raising.
        raise MetricError(f"pesq failed ({_pesq_reason(exc)})") from None


def _stoi_from_segments(x_seg: np.ndarray, y_seg: np.ndarray) -> float:
    # The scoring of pystoi.stoi (classic STOI) on its (segments, bands, frames) arrays; pystoi
    # keeps it inline, so it is repeated here to share the preprocessing with ESTOI.
    eps = pystoi_utils.EPS
    norm = np.linalg.norm(x_seg, axis=2, keepdims=True) / (
        np.linalg.norm(y_seg, axis=2, keepdims=True) + eps
    )
    y_primes = np.minimum(y_seg * norm, x_seg * (1 + 10 ** (-STOI_BETA / 20)))
    y_primes = y_primes - np.mean(y_primes, axis=2, keepdims=True)
    x_seg = x_seg - np.mean(x_seg, axis=2, keepdims=True)
    y_primes /= np.linalg.norm(y_primes, axis=2, keepdims=True) + eps
    x_seg /= np.linalg.norm(x_seg, axis=2, keepdims=True) + eps
    return float(np.sum(y_primes * x_seg) / (x_seg.shape[0] * x_seg.shape[1]))


def stoi_estoi(ref: np.ndarray, est: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[float, float]:
    """(STOI, ESTOI) with one pass of pystoi's preprocessing.

    Resampling to 10 kHz, silent-frame removal, STFT and third-octave bands are pystoi's own
    functions, done once for both measures (they are the bulk of the cost). Where pystoi returns
    1e-5 for too little speech, this raises `MetricError` instead.
    """
    x = scorable(ref, "reference")
    y = scorable(est, "estimate")
    _check_metric_lengths(x, y, "stoi")
    if sr != STOI_FS:
        x = pystoi_utils.resample_oct(x, STOI_FS, sr)
        y = pystoi_utils.resample_oct(y, STOI_FS, sr)
    x, y = pystoi_utils.remove_silent_frames(x, y, STOI_DYN_RANGE, STOI_FRAME, STOI_FRAME // 2)
    x_spec = pystoi_utils.stft(x, STOI_FRAME, STOI_NFFT, overlap=2).transpose()
    y_spec = pystoi_utils.stft(y, STOI_FRAME, STOI_NFFT, overlap=2).transpose()
    if x_spec.ndim != 2 or x_spec.shape[-1] < STOI_SEGMENT_FRAMES:
        raise MetricError(
            f"stoi: fewer than {STOI_SEGMENT_FRAMES} frames of speech after silence removal "
            "(under about 0.4 s of speech)"
        )
    x_tob = np.sqrt(np.matmul(STOI_OCTAVE_BANDS, np.square(np.abs(x_spec))))
    y_tob = np.sqrt(np.matmul(STOI_OCTAVE_BANDS, np.square(np.abs(y_spec))))
    # (bands, segments, N) -> (segments, bands, N): the same windows pystoi builds in a loop.
    windows = np.lib.stride_tricks.sliding_window_view
    x_seg = np.ascontiguousarray(windows(x_tob, STOI_SEGMENT_FRAMES, axis=1).transpose(1, 0, 2))
    y_seg = np.ascontiguousarray(windows(y_tob, STOI_SEGMENT_FRAMES, axis=1).transpose(1, 0, 2))
    x_n = pystoi_utils.row_col_normalize(x_seg)
    y_n = pystoi_utils.row_col_normalize(y_seg)
    estoi = float(np.sum(x_n * y_n / STOI_SEGMENT_FRAMES) / x_n.shape[0])
    return _stoi_from_segments(x_seg, y_seg), estoi


def _crop_eval_pair(
    clean: np.ndarray, est: np.ndarray, name: str, role: str
) -> tuple[np.ndarray, np.ndarray]:
    if len(clean) == len(est):
        return clean, est
    n = min(len(clean), len(est))
    warnings.warn(
        f"{name}: clean has {len(clean)} samples and {role} {len(est)}; both cropped to {n}",
        stacklevel=3,
    )
    return clean[:n], est[:n]


def score_against_clean(
    clean: np.ndarray, est: np.ndarray, sr: int
) -> tuple[dict[str, float], dict[str, str]]:
    """(values, failures): each metric either has a value or a reason, never both."""
    values: dict[str, float] = {}
    failures: dict[str, str] = {}
    for metric in ("pesq", "stoi_estoi", "si_sdr"):
        try:
            if metric == "pesq":
                values["pesq"] = pesq_wb(clean, est, sr)
            elif metric == "stoi_estoi":
                values["stoi"], values["estoi"] = stoi_estoi(clean, est, sr)
            else:
                values["si_sdr"] = si_sdr(clean, est)
        except MetricError as exc:
            for name in ("stoi", "estoi") if metric == "stoi_estoi" else (metric,):
                failures[name] = str(exc)
    for name, value in values.items():
        if not math.isfinite(value):
            failures[name] = f"{name} is not finite ({value})"
    return {k: v for k, v in values.items() if k not in failures}, failures


def score(clean: np.ndarray, est: np.ndarray, sr: int = SAMPLE_RATE) -> dict[str, float]:
    """PESQ-wb, STOI, ESTOI and SI-SDR of `est` against `clean`.

    Different lengths are cropped to the shorter with a warning. Raises `MetricError` naming each
    metric that cannot be computed (use `evaluate_pairs` to record failures and carry on).
    """
    clean, est = _crop_eval_pair(np.asarray(clean), np.asarray(est), "score()", "estimate")
    values, failures = score_against_clean(clean, est, sr)
    if failures:
        raise MetricError("; ".join(f"{m}: {r}" for m, r in failures.items()))
    return {m: values[m] for m in METRIC_NAMES}


def metrics_self_check(clean: np.ndarray, sr: int = SAMPLE_RATE, snr_db: float = 5.0) -> dict:
    """Check the metric stack on real speech: PESQ(clean, clean) is 4.64, a noisy copy scores lower.

    Run it before trusting an evaluation (a broken `pesq` build or a wrong rate shows up here).
    Returns {"clean": {metric: value}, "noisy": {...}}; raises `MetricError` when a check fails.
    """
    clean = np.asarray(clean, dtype=np.float32).reshape(-1)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    same = score(clean, clean, sr)
    noisy = score(clean, clean + noise, sr)
    if abs(same["pesq"] - PESQ_WB_MAX) > 0.01:
        raise MetricError(
            f"self-check: PESQ(clean, clean) is {same['pesq']:.3f}, expected {PESQ_WB_MAX}; "
            "the pesq package or the sample rate is wrong"
        )
    worse = [m for m in METRIC_NAMES if not noisy[m] < same[m]]
    if worse:
        raise MetricError(
            f"self-check: a copy at {snr_db} dB SNR does not score lower on {', '.join(worse)}; "
            "the metric stack is broken"
        )
    return {"clean": same, "noisy": noisy}

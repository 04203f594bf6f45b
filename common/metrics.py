"""Speech metrics computed from waveforms only: PESQ-wb, STOI, ESTOI and SI-SDR, and DNSMOS.

Every number here comes from a clean reference waveform and an estimate waveform (the team once
reported a PESQ "estimated" by a formula; that must be impossible), except DNSMOS
(`common.dnsmos`), which predicts listeners' scores from the signal alone: the one measure for
recordings without a clean reference, and an extra column beside the others. A metric that
cannot be computed for a file (silence, a clip shorter than PESQ's 0.25 s, NaN samples, an
unreadable file) is recorded with its reason and left out of that metric's mean: never a crash,
never a zero.

`evaluate_pairs` scores a list of `EvalItem`s (file paths or in-memory arrays; items without a
clean reference get DNSMOS only) in forked worker processes, one BLAS thread each, and returns
per-file rows plus a summary with the noisy baseline, the enhanced scores and the per-file delta.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pystoi import utils as pystoi_utils
from pystoi.stoi import BETA as STOI_BETA
from pystoi.stoi import DYN_RANGE as STOI_DYN_RANGE
from pystoi.stoi import FS as STOI_FS
from pystoi.stoi import N_FRAME as STOI_FRAME
from pystoi.stoi import NFFT as STOI_NFFT
from pystoi.stoi import OBM as STOI_OCTAVE_BANDS
from pystoi.stoi import N as STOI_SEGMENT_FRAMES
from threadpoolctl import threadpool_limits

from common.atomic import atomic_write
from common.audio import SAMPLE_RATE, load_audio, resample
from common.data import misalignment
from common.errors import UserError
from common.metric_names import ALL_METRICS, DNSMOS_METRICS, EVAL_SIGNALS, METRIC_NAMES
from common.progress import progress as progress_bar

PESQ_WB_MAX = 4.644  # PESQ-wb of a signal scored against itself
# About -100 dBFS: below 16-bit quantisation, there is nothing to score.
SILENCE_RMS = 1e-5
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


def _score_against_clean(
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
    values, failures = _score_against_clean(clean, est, sr)
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


@dataclass(frozen=True, eq=False)
class EvalItem:
    """One file to score. Paths are loaded (and resampled) here; arrays must be at `sr`.
    `clean=None`: a recording without a reference, scored by DNSMOS only."""

    name: str
    clean: Path | np.ndarray | None
    noisy: Path | np.ndarray
    enhanced: Path | np.ndarray | None = None
    sr: int = SAMPLE_RATE


@dataclass
class EvalResult:
    """Per-file rows (one dict per item, CSV-ready) and the summary dict (JSON-ready)."""

    rows: list[dict]
    summary: dict


def _load_eval_signal(source: Path | np.ndarray, sr: int) -> np.ndarray:
    if isinstance(source, np.ndarray):
        wav = source.astype(np.float32, copy=False).reshape(-1)
        return wav if sr == SAMPLE_RATE else resample(wav, sr, SAMPLE_RATE)
    return load_audio(source, SAMPLE_RATE, warn=True)


def eval_metrics(has_clean: bool, dnsmos: bool) -> tuple[str, ...]:
    """The metrics an evaluation computes: against the clean reference when there is one, and
    DNSMOS when asked for."""
    return (METRIC_NAMES if has_clean else ()) + (DNSMOS_METRICS if dnsmos else ())


def _score_dnsmos(wav: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
    from common.dnsmos import dnsmos

    try:
        return dnsmos(wav), {}
    except MetricError as exc:
        return {}, {m: str(exc) for m in DNSMOS_METRICS}


def _evaluate_eval_item(
    item: EvalItem, has_enhanced: bool, metrics: tuple[str, ...] = METRIC_NAMES
) -> tuple[dict, list[dict]]:
    row: dict = {"file": item.name, "seconds": None}
    failures: list[dict] = []
    signals = EVAL_SIGNALS if has_enhanced else EVAL_SIGNALS[:1]
    # Every row has every column (None = failed), whatever goes wrong below.
    for group in (*signals, "delta") if has_enhanced else signals:
        for metric in metrics:
            row[f"{group}_{metric}"] = None
    if item.clean is not None:
        row["misaligned"] = ""  # why the pair looks misaligned, when it does

    def fail_all(signal: str, reason: str) -> None:
        failures.extend(
            {"file": item.name, "signal": signal, "metric": m, "reason": reason} for m in metrics
        )

    clean = None
    if item.clean is not None:
        try:
            clean = _load_eval_signal(item.clean, item.sr)
        except UserError as exc:
            for signal in signals:
                fail_all(signal, f"clean reference unusable: {exc}")
            return row, failures
    loaded: dict[str, np.ndarray] = {}
    for signal in signals:
        source = getattr(item, signal)
        if source is None:
            fail_all(signal, f"no {signal} signal given")
            continue
        try:
            loaded[signal] = _load_eval_signal(source, item.sr)
        except UserError as exc:
            fail_all(signal, f"{signal} signal unusable: {exc}")
    if not loaded:
        return row, failures
    # One common length for clean, noisy and enhanced, so the delta compares the same span.
    references = {} if clean is None else {"clean": clean}
    n = min(len(w) for w in (*references.values(), *loaded.values()))
    lengths = {signal: len(w) for signal, w in (*references.items(), *loaded.items())}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{signal} {length}" for signal, length in lengths.items())
        warnings.warn(
            f"{item.name}: lengths differ ({listed} samples); all cropped to {n}", stacklevel=2
        )
    row["seconds"] = round(n / SAMPLE_RATE, 3)
    # A pair shifted in time or taken from two recordings still gets numbers (SI-SDR -50 dB), and
    # they would go into the means unnoticed: name it. Scored anyway; the user fixes the pairing.
    if clean is not None:
        suspect = []
        for signal, est in loaded.items():
            why = misalignment(est[:n], clean[:n], SAMPLE_RATE, role=signal)
            if why:
                suspect.append(why)
                warnings.warn(f"{item.name}: {why}; scored anyway, check the pairing", stacklevel=2)
        row["misaligned"] = "; ".join(suspect)
    for signal, est in loaded.items():
        values: dict[str, float] = {}
        reasons: dict[str, str] = {}
        if clean is not None:
            values, reasons = _score_against_clean(clean[:n], est[:n], SAMPLE_RATE)
        if DNSMOS_METRICS[0] in metrics:
            dnsmos_values, dnsmos_reasons = _score_dnsmos(est[:n])
            values.update(dnsmos_values)
            reasons.update(dnsmos_reasons)
        for metric, value in values.items():
            row[f"{signal}_{metric}"] = value
        failures.extend(
            {"file": item.name, "signal": signal, "metric": m, "reason": r}
            for m, r in reasons.items()
        )
    if has_enhanced:
        for metric in metrics:
            noisy, enhanced = row[f"noisy_{metric}"], row[f"enhanced_{metric}"]
            row[f"delta_{metric}"] = None if noisy is None or enhanced is None else enhanced - noisy
    return row, failures


def _evaluate_capturing_warnings(
    args: tuple[EvalItem, bool, tuple[str, ...]],
) -> tuple[dict, list[dict], list]:
    # Warnings raised in a worker would be printed there, unformatted and out of order; they
    # travel back with the result and are re-raised by the parent.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row, failures = _evaluate_eval_item(*args)
    return row, failures, [str(w.message) for w in caught]


def _limit_eval_worker_threads() -> None:
    # N worker processes x N BLAS threads would oversubscribe the cores.
    threadpool_limits(limits=1)


def eval_worker_count(workers: int | None, n_items: int) -> int:
    """Processes to use: `workers`, or one per available core; never more than the items."""
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            workers = os.cpu_count() or 1
    if workers < 1:
        raise UserError(f"workers={workers}: use 1 or more worker processes")
    if workers > 1 and "fork" not in multiprocessing.get_all_start_methods():
        # Spawned workers would re-import the notebook; serial is slower but always works.
        warnings.warn(
            "no 'fork' start method on this platform: evaluating in one process", stacklevel=3
        )
        workers = 1
    return max(1, min(workers, n_items))


def _stats(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize_eval_rows(rows: list[dict], failures: list[dict]) -> dict:
    """The summary dict: count, per-signal {metric: {mean, std, n}} over successes, failures."""
    metrics = [m for m in ALL_METRICS if any(f"noisy_{m}" in row for row in rows)] or list(
        METRIC_NAMES
    )
    has_enhanced = any(f"enhanced_{metrics[0]}" in row for row in rows)
    groups = ("noisy", "enhanced", "delta") if has_enhanced else ("noisy",)
    summary: dict = {"count": len(rows)}
    for group in groups:
        summary[group] = {
            m: _stats([r[f"{group}_{m}"] for r in rows if r.get(f"{group}_{m}") is not None])
            for m in metrics
        }
    summary["failures"] = list(failures)
    summary["misaligned"] = [
        {"file": r["file"], "reason": r["misaligned"]} for r in rows if r.get("misaligned")
    ]
    return summary


def evaluate_pairs(
    items: Iterable[EvalItem],
    workers: int | None = None,
    progress: bool = True,
    dnsmos: bool = False,
) -> EvalResult:
    """Score every item (noisy vs clean, and enhanced vs clean when given) in worker processes;
    with `dnsmos`, DNSMOS of each signal too (items without a clean reference get only that).

    Rows keep the order of `items`. Failures are recorded per file, signal and metric; the
    summary means are over the files where the metric succeeded (`n` says how many).
    """
    items = list(items)
    if not items:
        raise UserError("evaluate: no files to evaluate; check the pairs folder")
    has_clean = {item.clean is not None for item in items}
    if len(has_clean) > 1:
        raise UserError("evaluate: some items have a clean reference and some not; score apart")
    if has_clean == {False} and not dnsmos:
        raise UserError("evaluate: no clean references: only DNSMOS can score these (dnsmos=True)")
    if dnsmos:
        from common.dnsmos import load_dnsmos

        load_dnsmos()  # here, not in every worker: a missing package is one line, before scoring
    has_enhanced = any(item.enhanced is not None for item in items)
    metrics = eval_metrics(has_clean == {True}, dnsmos)
    jobs = [(item, has_enhanced, metrics) for item in items]
    n_workers = eval_worker_count(workers, len(items))
    bar = {"total": len(items), "disable": not progress, "desc": "evaluate", "unit": "file"}
    if n_workers == 1:
        # One BLAS thread here too: OpenBLAS threads spin on these small products and cost
        # about as much CPU as the metrics themselves.
        with threadpool_limits(limits=1):
            outputs = [_evaluate_capturing_warnings(job) for job in progress_bar(jobs, **bar)]
    else:
        # Small chunks: per-file cost varies with length, and the last chunk sets the wall time.
        chunk = max(1, len(jobs) // (n_workers * 8))
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            n_workers, mp_context=context, initializer=_limit_eval_worker_threads
        ) as pool:
            # map() forks the workers before a tqdm bar starts its monitor thread.
            results = pool.map(_evaluate_capturing_warnings, jobs, chunksize=chunk)
            outputs = list(progress_bar(results, **bar))
    rows, failures = [], []
    for row, item_failures, messages in outputs:
        rows.append(row)
        failures.extend(item_failures)
        for message in messages:
            warnings.warn(message, stacklevel=2)
    return EvalResult(rows=rows, summary=summarize_eval_rows(rows, failures))


def _eval_csv_cell(value: object) -> object:
    return "" if value is None else value


def write_results(result: EvalResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `eval_per_file.csv` (one row per file, empty cell = failed, reason in `failures`)
    and `eval_summary.json` (the summary dict) into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reasons: dict[str, list[str]] = {}
    for f in result.summary["failures"]:
        reasons.setdefault(f["file"], []).append(f"{f['signal']}/{f['metric']}: {f['reason']}")
    columns = list(result.rows[0]) + ["failures"] if result.rows else ["file", "failures"]
    # Each file is written under a temporary name and renamed: a kill never leaves half a file.
    csv_path = out_dir / "eval_per_file.csv"
    with atomic_write(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in result.rows:
            cells = {k: _eval_csv_cell(v) for k, v in row.items()}
            writer.writerow({**cells, "failures": " | ".join(reasons.get(row["file"], []))})
    json_path = out_dir / "eval_summary.json"
    with atomic_write(json_path) as fh:
        # allow_nan=False: a NaN reaching the summary is a bug to see, not a value to store.
        fh.write(json.dumps(result.summary, indent=2, allow_nan=False) + "\n")
    return csv_path, json_path


def _format_metric_stat(stat: dict | None, signed: bool = False) -> str:
    if not stat or stat["n"] == 0:
        return "-"
    sign = "+" if signed else ""
    return f"{stat['mean']:{sign}.3f} ± {stat['std']:.3f}"


def summary_table(summary: dict) -> str:
    """A short text table of a summary: mean ± std per metric for noisy / enhanced / delta."""
    groups = [g for g in ("noisy", "enhanced", "delta") if g in summary]
    metrics = [m for m in ALL_METRICS if m in summary[groups[0]]]
    lines = [f"{'metric':<13}" + "".join(f"{g:>18}" for g in groups) + f"{'n':>8}"]
    for m in metrics:
        cells = "".join(f"{_format_metric_stat(summary[g][m], g == 'delta'):>18}" for g in groups)
        n = "/".join(str(summary[g][m]["n"]) for g in groups if g != "delta")
        lines.append(f"{m:<13}{cells}{n:>8}")
    failures = summary.get("failures", [])
    lines.append(f"files: {summary['count']}, metric failures: {len(failures)}")
    for f in failures[:5]:
        lines.append(f"  {f['file']} [{f['signal']}/{f['metric']}]: {f['reason']}")
    if len(failures) > 5:
        lines.append(f"  ... {len(failures) - 5} more in the summary JSON")
    misaligned = summary.get("misaligned", [])
    if misaligned:
        lines.append(f"misaligned pairs (scored anyway, check the pairing): {len(misaligned)}")
        lines.extend(f"  {m['file']}: {m['reason']}" for m in misaligned[:5])
        if len(misaligned) > 5:
            lines.append(f"  ... {len(misaligned) - 5} more in the summary JSON")
    return "\n".join(lines)

"""Scoring a set of recordings: noisy (and enhanced) against clean, file by file, in parallel.

`evaluate_pairs` scores a list of `EvalItem`s (file paths or in-memory arrays; items without a
clean reference get DNSMOS only) in forked worker processes, one BLAS thread each, and returns
per-file rows plus a summary with the noisy baseline, the enhanced scores and the per-file delta.
A metric that cannot be computed for a file is recorded with its reason and left out of that
metric's mean (see `common.metrics`). `write_results` stores both; `summary_table` prints them.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from common.alignment import misalignment
from common.atomic import atomic_write
from common.audio import SAMPLE_RATE, load_audio, resample
from common.errors import UserError
from common.metric_names import ALL_METRICS, DNSMOS_METRICS, EVAL_SIGNALS, METRIC_NAMES
from common.metrics import MetricError, score_against_clean
from common.progress import progress as progress_bar


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
            values, reasons = score_against_clean(clean[:n], est[:n], SAMPLE_RATE)
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

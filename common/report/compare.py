"""The numbers a report compares runs by, computed from the per-file scores each run wrote:
which metrics and file sets there are, the baseline run, paired differences over the same files,
the configuration fields that differ, each run's headline means."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.errors import UserError
from common.metric_names import METRIC_NAMES
from common.report.runs import Run
from common.stats import Interval, PairedDifference, paired_difference


def metrics_of(runs: Sequence[Run]) -> list[str]:
    """The metrics to show: common.metrics' names first, then any other enhanced_* column."""
    names = list(METRIC_NAMES)
    for run in runs:
        for row in run.rows[:1]:
            for key in row:
                if key.startswith("enhanced_") and key[len("enhanced_") :] not in names:
                    names.append(key[len("enhanced_") :])
    present = [m for m in names if any(any(f"enhanced_{m}" in r for r in x.rows) for x in runs)]
    return present or list(METRIC_NAMES)


def file_set_key(run: Run) -> tuple:
    """Same files *and* the same crops: the noisy input's scores must agree file by file."""
    return tuple(
        sorted(
            (str(r["file"]),)
            + tuple(
                round(r[f"noisy_{m}"], 4) if isinstance(r.get(f"noisy_{m}"), float) else None
                for m in METRIC_NAMES
            )
            for r in run.rows
        )
    )


def file_sets(runs: Sequence[Run]) -> dict[str, str]:
    """{run label: set name} ("A", "B", ...) for the usable runs, in order of first appearance."""
    names: dict[tuple, str] = {}
    out = {}
    for run in runs:
        if run.ok:
            key = file_set_key(run)
            names.setdefault(
                key, chr(ord("A") + len(names)) if len(names) < 26 else str(len(names))
            )
            out[run.label] = names[key]
    return out


def choose_baseline(runs: Sequence[Run], baseline: str = "auto") -> Run | None:
    """The run the others are compared with: the one named, or ("auto") the previous best, the
    best by the first metric's enhanced mean among every usable run except the newest."""
    usable = [r for r in runs if r.ok]
    if baseline and baseline != "auto":
        for run in runs:
            if run.label == baseline:
                if not run.ok:
                    raise UserError(
                        f"baseline {baseline!r} is left out of the report: {run.problem}"
                    )
                return run
        known = ", ".join(r.label for r in usable) or "none"
        raise UserError(f"baseline {baseline!r}: no such run; runs: {known}")
    if len(usable) < 2:
        return None
    newest = max(usable, key=lambda r: r.when)
    earlier = [r for r in usable if r is not newest]
    first = METRIC_NAMES[0]

    def score(r: Run) -> float:
        iv = r.interval("enhanced", first)
        return iv.mean if iv else -math.inf

    return max(earlier, key=score)


@dataclass
class Comparison:
    run: Run
    paired: dict[str, PairedDifference | None]
    note: str = ""  # why there is no pairing


def compare_to_noisy(runs: Sequence[Run], metrics: Sequence[str]) -> list[Comparison]:
    return [
        Comparison(
            r,
            {m: paired_difference(r.values("noisy", m), r.values("enhanced", m)) for m in metrics},
        )
        for r in runs
        if r.ok
    ]


def compare_to_run(base: Run, runs: Sequence[Run], metrics: Sequence[str]) -> list[Comparison]:
    out = []
    base_key, base_files = file_set_key(base), {str(r["file"]) for r in base.rows}
    for run in runs:
        if not run.ok or run is base:
            continue
        if file_set_key(run) != base_key:
            files = {str(r["file"]) for r in run.rows}
            shared = len(files & base_files)
            why = "different files" if files != base_files else "the same files, other crops"
            note = (
                f"not paired: evaluated on {why} ({len(files)} files vs {len(base_files)}, "
                f"{shared} shared)"
            )
            out.append(Comparison(run, {}, note))
            continue
        paired = {
            m: paired_difference(base.values("enhanced", m), run.values("enhanced", m))
            for m in metrics
        }
        out.append(Comparison(run, paired))
    return out


def config_differences(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """(dotted field, value per run) for the configuration fields that differ between runs."""

    def flat(d: Any, prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        if isinstance(d, dict):
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}." if not isinstance(v, dict) else f"{prefix}{k}."))
            return out
        return {prefix.rstrip("."): json.dumps(d)}

    flats = [flat(r.config) for r in runs]
    for f in flats:
        f.pop("description", None)  # the recipe's prose: its name (recipe) already differs
    keys = sorted(set().union(*flats)) if flats else []
    out = []
    for key in keys:
        values = [f.get(key, "–") for f in flats]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


def _summary_mean(run: Run, group: str, metric: str) -> float | None:
    value = ((run.summary.get("metrics") or {}).get(group) or {}).get(metric) or {}
    mean = value.get("mean") if isinstance(value, dict) else None
    return float(mean) if isinstance(mean, (int, float)) and math.isfinite(mean) else None


def headline_means(run: Run, metric: str) -> tuple[float | None, float | None, Interval | None]:
    """(noisy mean, enhanced mean, enhanced interval): from the per-file rows when the run has
    them (the report's numbers), else from its summary.json (older runs)."""
    if run.rows:
        noisy, enhanced = run.interval("noisy", metric), run.interval("enhanced", metric)
        return (noisy.mean if noisy else None, enhanced.mean if enhanced else None, enhanced)
    return _summary_mean(run, "noisy", metric), _summary_mean(run, "enhanced", metric), None


def run_sort_key(run: Run) -> tuple[int, float]:
    _, enhanced, _ = headline_means(run, METRIC_NAMES[0])
    return (0, -enhanced) if enhanced is not None else (1, 0.0)

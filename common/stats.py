"""Means with 95% bootstrap intervals, and paired differences between two sets of per-file scores.

Everything here works on the per-file numbers a run wrote (`eval_per_file.csv`, or the rows of
`common.evaluation.evaluate_pairs`), never on summaries: an interval says how far a mean over a few
dozen files could move with another draw of files, and a paired difference compares two systems
on the *same* files, which removes the spread between easy and hard files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.metric_names import METRIC_NAMES

BOOTSTRAP_SAMPLES = 4000
CI_LEVEL = 0.95
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean over `n` files with its percentile-bootstrap interval [lo, hi]."""

    mean: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """`other - base` over the files both scored: mean with its interval, share improved."""

    interval: Interval
    improved: float  # share of files where other > base
    n: int


def finite(values: Sequence[object]) -> np.ndarray:
    """The finite numbers among `values` (None, '' and NaN are failed files), as float64."""
    out = []
    for v in values:
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if math.isfinite(x):
            out.append(x)
    return np.asarray(out, dtype=np.float64)


def bootstrap_ci(
    values: Sequence[object],
    level: float = CI_LEVEL,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """Mean of the finite `values` with a percentile-bootstrap interval (None when there are none).

    Files are resampled with replacement `samples` times; the interval is the central `level`
    share of the resampled means. One file gives an interval of zero width: nothing to resample.
    """
    x = finite(values)
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(samples, x.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(lo), float(hi), int(x.size))


def paired_difference(
    base: Mapping[str, object], other: Mapping[str, object], **kwargs: float
) -> PairedDifference | None:
    """`other - base` per file, over the files where both have a finite value (keyed by name)."""
    diffs = []
    for name, b in base.items():
        if name not in other:
            continue
        pair = finite([b, other[name]])
        if pair.size == 2:
            diffs.append(pair[1] - pair[0])
    interval = bootstrap_ci(diffs, **kwargs)  # type: ignore[arg-type]
    if interval is None:
        return None
    improved = float(np.mean(np.asarray(diffs) > 0))
    return PairedDifference(interval, improved, interval.n)


def metric_digits(metric: str) -> int:
    """Decimals shown: dB metrics get 2, scores in [0, 5] get 3."""
    return 2 if metric.endswith("sdr") else 3


def format_interval(iv: Interval | None, metric: str, signed: bool = False) -> str:
    if iv is None:
        return "–"
    d = metric_digits(metric)
    sign = "+" if signed else ""
    return f"{iv.mean:{sign}.{d}f} [{iv.lo:{sign}.{d}f}, {iv.hi:{sign}.{d}f}]"


def row_values(rows: Sequence[Mapping[str, object]], column: str) -> dict[str, object]:
    """{file: value} of one per-file column."""
    return {str(r["file"]): r.get(column) for r in rows}


def headline(rows: Sequence[Mapping[str, object]], metrics: Sequence[str] = METRIC_NAMES) -> str:
    """A run's headline numbers as text: per metric the noisy and enhanced means with their 95%
    intervals, the paired difference with its interval and the share of files improved."""
    lines = [
        f"{'metric':<8}{'noisy':>26}{'enhanced':>26}{'difference (paired)':>30}{'improved':>10}"
    ]
    for m in metrics:
        noisy = bootstrap_ci([r.get(f"noisy_{m}") for r in rows])
        enhanced = bootstrap_ci([r.get(f"enhanced_{m}") for r in rows])
        diff = paired_difference(row_values(rows, f"noisy_{m}"), row_values(rows, f"enhanced_{m}"))
        lines.append(
            f"{m:<8}{format_interval(noisy, m):>26}{format_interval(enhanced, m):>26}"
            f"{format_interval(diff.interval if diff else None, m, signed=True):>30}"
            f"{(f'{diff.improved:.0%}' if diff else '–'):>10}"
        )
    n = len(rows)
    lines.append(
        f"{n} test files; [..]: {CI_LEVEL:.0%} bootstrap interval of the mean "
        f"({BOOTSTRAP_SAMPLES} resamples of the files); improved: share of files where the "
        "enhanced output scores higher than the noisy input"
    )
    return "\n".join(lines)

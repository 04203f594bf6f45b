"""The alignment guard: noisy = clean + noise, so an aligned pair correlates strongly; a pair
shifted in time or taken from two recordings does not, and is named with the shift that would
line it up, if any."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from common.audio import SAMPLE_RATE, load_audio
from common.checks import number
from common.errors import UserError

if TYPE_CHECKING:
    import torch

# Mean noisy/clean correlation of aligned pairs in the team's Kaggle data (0.86); independent
# crops gave ~0.
ALIGNED_CORRELATION = 0.86
# Below this a pair is implausible. Noisy = clean + noise correlates with clean as
# 1/sqrt(1 + 1/SNR): 0.71 at 0 dB, 0.3 only at -10 dB; the real pairs in ../shared/data give
# 0.63-0.99 (3-s crops), while a pair shifted by 0.5 s or from two utterances gives |r| < 0.03.
PAIR_MIN_CORRELATION = 0.3


def pair_correlation(noisy: np.ndarray, clean: np.ndarray) -> float | None:
    """Zero-lag correlation of a noisy and a clean waveform (cut to the shorter); None if silent."""
    noisy = np.asarray(noisy, dtype=np.float64).reshape(-1)
    clean = np.asarray(clean, dtype=np.float64).reshape(-1)
    n = min(len(noisy), len(clean))
    noisy, clean = noisy[:n] - noisy[:n].mean(), clean[:n] - clean[:n].mean()
    denom = float(np.sqrt(np.dot(noisy, noisy) * np.dot(clean, clean)))
    # Silent signals carry no evidence either way.
    return None if denom < 1e-8 else float(np.dot(noisy, clean) / denom)


def _best_shift(noisy: np.ndarray, clean: np.ndarray, sr: int) -> tuple[float, float]:
    """(seconds by which `noisy` lags `clean`, correlation there), over all shifts (FFT)."""
    from scipy.signal import correlate, correlation_lags

    noisy = np.asarray(noisy, dtype=np.float64) - np.mean(noisy)
    clean = np.asarray(clean, dtype=np.float64) - np.mean(clean)
    xc = correlate(noisy, clean, mode="full", method="fft")
    k = int(np.argmax(np.abs(xc)))
    lag = int(correlation_lags(len(noisy), len(clean), mode="full")[k])
    denom = float(np.sqrt(np.dot(noisy, noisy) * np.dot(clean, clean))) + 1e-12
    return lag / sr, float(xc[k] / denom)


def misalignment(
    noisy: np.ndarray, clean: np.ndarray, sr: int = SAMPLE_RATE,
    min_corr: float = PAIR_MIN_CORRELATION, role: str = "noisy",
) -> str | None:  # fmt: skip
    """None for a plausible pair; else why not, e.g. "noisy/clean correlation 0.01 (aligned pairs
    give above 0.3); noisy lags clean by 0.50 s". Whole files give the surest answer."""
    corr = pair_correlation(noisy, clean)
    if corr is None or corr >= min_corr:
        return None
    why = f"{role}/clean correlation {corr:.2f} (aligned pairs give above {min_corr})"
    shift, best = _best_shift(noisy, clean, sr)
    if abs(best) >= min_corr and abs(shift) * sr >= 1:
        return f"{why}; {role} lags clean by {shift:.2f} s (correlation {best:.2f} there)"
    return f"{why}; no shift lines them up: not the same recording"


def check_alignment(
    dataset: torch.utils.data.Dataset, n_pairs: int = 32, min_corr: float = PAIR_MIN_CORRELATION
) -> float:
    """Mean noisy/clean correlation over up to `n_pairs` items; UserError naming every implausible
    pair, or when the mean is implausibly low.

    Noisy = clean + noise, so aligned pairs correlate strongly (0.86 in the team's data, about
    0.5 even at -5 dB SNR); misaligned crops or mispaired files give about 0. An item whose crop
    correlates less than `min_corr` is checked again on its whole files (a crop may fall in a
    pause); a pair that fails there too is named, with the shift that would align it if any.
    """
    number("min_corr", min_corr, -1.0, 1.0)
    number("n_pairs", n_pairs, 1, whole=True)
    n = len(dataset)
    if n == 0:
        raise UserError("alignment check: the dataset is empty; check the data folders")
    indices = np.unique(np.linspace(0, n - 1, num=min(n_pairs, n)).round().astype(int))
    pairs = getattr(dataset, "pairs", None)
    sr = getattr(dataset, "sr", SAMPLE_RATE)
    corrs, bad = [], []
    for i in indices:
        noisy, clean = dataset[int(i)]
        c = pair_correlation(np.asarray(noisy), np.asarray(clean))
        if c is None:
            continue
        corrs.append(c)
        if c >= min_corr:
            continue
        if pairs is None:
            bad.append(f"item {i} (correlation {c:.2f})")
            continue
        pair = pairs[int(i)]
        why = misalignment(load_audio(pair.noisy, sr), load_audio(pair.clean, sr), sr, min_corr)
        if why:
            bad.append(f"{pair.name}: {why}")
    if not corrs:
        raise UserError(
            f"alignment check: all {len(indices)} sampled pairs are silent; check the data"
        )
    where = pairs[0].noisy.parent if pairs else "the dataset"
    if bad:
        raise UserError(
            f"{where}: {len(bad)} of {len(corrs)} checked pairs are not aligned: "
            f"{'; '.join(bad[:10])}{' ...' if len(bad) > 10 else ''}; fix or remove these pairs"
        )
    mean = float(np.mean(corrs))
    if not mean >= min_corr:
        raise UserError(
            f"{where}: noisy/clean correlation {mean:.2f} over {len(corrs)} pairs (aligned data "
            f"gives about {ALIGNED_CORRELATION}, minimum {min_corr}): noisy and clean are not "
            "aligned; check the pairing and that both files are cropped at the same position"
        )
    return mean

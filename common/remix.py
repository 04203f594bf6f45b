"""Dynamic remixing of a paired dataset: fresh noisy speech from fixed noisy/clean pairs.

A paired corpus (the team's public Kaggle dataset: 7,000 LibriSpeech pairs, ~35 h) holds one
noise per utterance. Remixing takes each pair apart once, `noisy = g * clean + residual`, with
`g` fitted per pair by least squares on the aligned whole files, and then mixes every training
example afresh: a random crop of one utterance, the residual noise of another pair (or babble
of other utterances) at an SNR drawn from the recipe's range, at a random level
(`common.mixing.MixingDataset`, with residuals in place of noise files).

Only per-pair statistics stay in memory; crops are read from disk. A pair is left out, and
counted by reason, when

- its noisy and clean files are not aligned (zero-lag correlation below the alignment guard's
  `PAIR_MIN_CORRELATION`),
- its residual still carries the speech: the log-energy envelope of the residual follows the
  clean one (correlation above `LEAK_MAX_CORRELATION`). A scalar gain removes speech that was
  only added; speech that was filtered, reverberated, delayed or level-controlled stays in the
  residual, which would teach the model to keep speech out of its output,
- its residual is (almost) silent, or the pair cannot be read or is too short.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.alignment import PAIR_MIN_CORRELATION, pair_correlation
from common.atomic import atomic_write
from common.audio import SAMPLE_RATE, SILENCE_RMS, AudioError, load_audio, read_segment
from common.corpus import SPEAKER_PATTERNS, stable_rank
from common.errors import UserError
from common.mixing import MixConfig, MixingDataset
from common.pairs import AudioPair
from common.progress import progress as progress_bar

# Envelope correlation residual/clean above which a residual is taken to hold speech. Measured
# on 32 ms log-energy envelopes over the clean's active frames (within 40 dB of its loudest).
# Residuals of pure addition: the 10 real pairs in ../shared/data/pairs (VoiceBank-DEMAND, DNS
# 2020, babble at 0 dB) give -0.20 to 0.42; the 638 pairs `data make-pairs` makes from
# ../shared/data give 99% below 0.31 and at most 0.59 (two clips under 2 s with a cat and a
# passing train: few frames, non-stationary noise). Speech that leaks: the same speech
# reverberated gives 0.86, delayed by 1 ms 0.94, under a 2 Hz gain swing 0.65.
LEAK_MAX_CORRELATION = 0.6
# A residual this far (dB) below the clean speech is no noise worth remixing.
MAX_RESIDUAL_SNR_DB = 40.0
ENVELOPE_FRAME = 512  # samples: 32 ms at 16 kHz
ENVELOPE_ACTIVE_DB = 40.0
MIN_PAIR_SECONDS = 1.0
LEFT_OUT_REASONS = ("misaligned", "speech_in_residual", "no_noise", "unreadable", "too_short")
STATS_VERSION = 1  # bump when the measurement changes: cached statistics are then redone


@dataclass(frozen=True)
class PairStats:
    """What remixing keeps of one pair: its files, length, fit and verdict."""

    name: str
    noisy: str
    clean: str
    frames: int = 0
    gain: float = 0.0  # least-squares g in noisy = g * clean + residual
    correlation: float = 0.0  # zero-lag noisy/clean correlation (the alignment guard's)
    leak: float = 0.0  # residual/clean envelope correlation
    residual_snr_db: float = 0.0  # clean (scaled by g) over residual power
    left_out: str = ""  # "" when used, else one of LEFT_OUT_REASONS


def _log_envelope(x: np.ndarray) -> np.ndarray:
    m = len(x) // ENVELOPE_FRAME
    frames = x[: m * ENVELOPE_FRAME].reshape(m, ENVELOPE_FRAME)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)


def envelope_correlation(residual: np.ndarray, clean: np.ndarray) -> float:
    """Correlation of the residual's and the clean speech's log-energy envelopes over the
    frames where the speech is active; 0 when too few frames to say."""
    env_clean, env_res = _log_envelope(clean), _log_envelope(residual)
    active = env_clean > env_clean.max(initial=-100.0) - ENVELOPE_ACTIVE_DB
    if active.sum() < 4 or np.std(env_res[active]) < 1e-6 or np.std(env_clean[active]) < 1e-6:
        return 0.0
    return float(np.corrcoef(env_clean[active], env_res[active])[0, 1])


def measure_pair(pair: AudioPair, sr: int = SAMPLE_RATE) -> PairStats:
    """Fit `noisy = g * clean + residual` on the whole aligned files and judge the residual."""
    base = PairStats(pair.name, str(pair.noisy), str(pair.clean))
    try:
        noisy = load_audio(pair.noisy, sr).astype(np.float64)
        clean = load_audio(pair.clean, sr).astype(np.float64)
    except AudioError as exc:
        warnings.warn(f"{exc}; pair left out of remixing", stacklevel=2)
        return PairStats(**{**asdict(base), "left_out": "unreadable"})
    n = min(len(noisy), len(clean))
    noisy, clean = noisy[:n], clean[:n]
    if n < MIN_PAIR_SECONDS * sr:
        return PairStats(**{**asdict(base), "frames": n, "left_out": "too_short"})
    power = float(np.dot(clean, clean))
    corr = pair_correlation(noisy, clean)
    gain = float(np.dot(noisy, clean) / power) if power > 0 else 0.0
    residual = noisy - gain * clean
    res_power = float(np.mean(residual**2))
    snr = 10 * np.log10(max(gain * gain * power / n, 1e-20) / max(res_power, 1e-20))
    leak = envelope_correlation(residual, clean)
    if corr is None or corr < PAIR_MIN_CORRELATION:
        verdict = "misaligned"
    elif leak > LEAK_MAX_CORRELATION:
        verdict = "speech_in_residual"
    elif snr > MAX_RESIDUAL_SNR_DB or np.sqrt(res_power) < SILENCE_RMS:
        verdict = "no_noise"
    else:
        verdict = ""
    values = {**asdict(base), "frames": n, "gain": gain, "correlation": corr or 0.0}
    return PairStats(**{**values, "leak": leak, "residual_snr_db": snr, "left_out": verdict})


def _cache_key(pairs: list[AudioPair]) -> str:
    # The verdicts are cached with the measurements: their thresholds are part of the key.
    rules = (STATS_VERSION, LEAK_MAX_CORRELATION, MAX_RESIDUAL_SNR_DB, PAIR_MIN_CORRELATION)
    h = hashlib.sha1(f"remix-stats {rules}".encode())
    for p in pairs:
        for path in (p.noisy, p.clean):
            st = Path(path).stat()
            h.update(f"{p.name}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def measure_pairs(
    pairs: list[AudioPair], cache_dir: Path | None = None, workers: int | None = None
) -> list[PairStats]:
    """`measure_pair` for every pair (threads; decoding releases the GIL), with a progress bar.

    The statistics are cached in `cache_dir` under a key of the files' names, sizes and times,
    so a resumed run or a second run on the same data does not read 35 hours of audio again.
    """
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"remix-stats-{_cache_key(pairs)}.json"
        if cache.is_file():
            try:
                return [PairStats(**row) for row in json.loads(cache.read_text())]
            except (ValueError, TypeError):
                warnings.warn(f"{cache}: unreadable cache, measuring the pairs again", stacklevel=2)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        stats = list(
            progress_bar(
                pool.map(measure_pair, pairs),
                total=len(pairs),
                desc="remix: measuring pairs",
                unit="pair",
                mininterval=2.0,
            )
        )
    if cache is not None:
        with atomic_write(cache) as f:
            json.dump([asdict(s) for s in stats], f)
    return stats


def left_out_counts(stats: list[PairStats]) -> dict[str, int]:
    """How many pairs were left out, by reason (every reason listed, 0 included)."""
    counts = Counter(s.left_out for s in stats if s.left_out)
    return {reason: counts.get(reason, 0) for reason in LEFT_OUT_REASONS}


def pair_group(name: str) -> str:
    """The speaker of a pair where its file name carries one (LibriSpeech `spk-chapter-utt`,
    VCTK `p225_001`, ...), else the pair itself: splits never put one speaker on both sides."""
    stem = Path(name).stem
    for pattern, template in SPEAKER_PATTERNS:
        match = pattern.match(stem)
        if match:
            return template.format(*match.groups())
    return name


def split_by_speaker(
    names: list[str], seed: int, fractions: tuple[float, float]
) -> dict[str, list[str]]:
    """Pair names to "train" / "val" / "test" by whole speakers (`pair_group`), `fractions`
    (validation, test) counted in pairs: speakers in a seeded order (a hash, the same on every
    machine) join test, then validation, while they fit in its share; one speaker with many
    utterances (a single-reader corpus) therefore never takes a third of the data. A share above
    0 gets at least one speaker when there are three or more."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(pair_group(name), []).append(name)
    ordered = sorted(groups, key=lambda g: stable_rank(g, seed))
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    shares = {"test": fractions[1] * len(names), "val": fractions[0] * len(names)}
    for group in ordered:
        members = groups[group]
        split = next(
            (k for k, share in shares.items() if len(out[k]) + len(members) <= share), "train"
        )
        out[split].extend(members)
    for split, fraction in (("test", fractions[1]), ("val", fractions[0])):
        if fraction > 0 and not out[split] and len(groups) >= 3:  # every speaker too large
            smallest = min((g for g in ordered if groups[g][0] in out["train"]),
                           key=lambda g: (len(groups[g]), stable_rank(g, seed)))  # fmt: skip
            out["train"] = [n for n in out["train"] if n not in set(groups[smallest])]
            out[split] = list(groups[smallest])
    return {k: sorted(v) for k, v in out.items()}


class RemixDataset(MixingDataset):
    """Training mixtures of clean crops and other pairs' residual noise (`MixingDataset`'s
    draws, SNR, level and babble; `length` items per epoch, new ones each epoch)."""

    def __init__(
        self,
        stats: list[PairStats],
        cfg: MixConfig | None = None,
        train: bool = True,
        length: int = 1000,
        *,
        sr: int = SAMPLE_RATE,
    ) -> None:
        used = [s for s in stats if not s.left_out]
        if not used:
            raise UserError("remix: no usable pairs (every pair was left out); check the data")
        # Speech: the clean files; noise: the pairs, named by their noisy file.
        self._pair_of_clean = {Path(s.clean): Path(s.noisy) for s in used}
        self._residual = {Path(s.noisy): (Path(s.clean), s.gain, s.frames) for s in used}
        self._frames = {Path(s.clean): s.frames for s in used}
        self._frames.update({Path(s.noisy): s.frames for s in used})
        speech, noise = list(self._pair_of_clean), list(self._residual)
        super().__init__(speech, noise, cfg, train, length, sr=sr)

    def _readable(self, files: list[Path], role: str) -> tuple[list[Path], list[int]]:
        # Measured already (`measure_pairs`): no file is opened again.
        kept = sorted(files)
        return kept, [self._frames[p] for p in kept]

    def _read(self, path: Path, start: int, frames: int) -> np.ndarray:
        if path not in self._residual:
            return super()._read(path, start, frames)
        clean, gain, _ = self._residual[path]
        noisy = read_segment(path, start, frames, self.sr)
        return noisy - np.float32(gain) * read_segment(clean, start, frames, self.sr)

    def _load(self, path: Path) -> np.ndarray:
        if path not in self._residual:
            return super()._load(path)
        return self._read(path, 0, self._residual[path][2])

    def _excluded_noise(self, speech_file: Path) -> Path | None:
        # The noise of the utterance's own pair would rebuild a fixed pair: take another.
        return self._pair_of_clean.get(speech_file) if len(self.noise) > 1 else None

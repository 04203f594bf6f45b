"""A small synthetic corpus in the Kaggle layout, so the local smoke run exercises the real path.

The signals are speech-like (voiced syllables with a pitch contour and formant resonances,
unvoiced bursts, pauses) mixed with several noise types at 5-20 dB, written as the same four
archives as `earth16/libri-speech-noise-dataset` (`train.7z`, `y_train.7z`, `test.7z`,
`y_test.7z`) with 16-24 s files. It tests plumbing (extraction, pairing, cropping, training
steps), not enhancement quality: no number measured on it says anything about real speech.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import lfilter

from common.audio import SAMPLE_RATE, write_audio
from common.errors import UserError

# (F1, F2, F3) in Hz of a few vowels; each syllable picks one.
VOWEL_FORMANTS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (530, 1840, 2480),
    (570, 840, 2410),
    (300, 870, 2240),
    (660, 1720, 2410),
)
SYNTHETIC_NOISE_TYPES = ("white", "pink", "babble", "hum", "bursts")


@dataclass
class SyntheticConfig:
    """Durations and SNRs of the synthetic files (the Kaggle data: 16-24 s, 5-20 dB)."""

    min_seconds: float = 16.0
    max_seconds: float = 24.0
    snr_db: tuple[float, float] = (5.0, 20.0)
    sample_rate: int = SAMPLE_RATE


def _resonator(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    # Two-pole resonance (a formant), normalised to unit gain at its peak.
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2 * np.pi * freq / sr
    a = [1.0, -2 * r * np.cos(theta), r * r]
    return lfilter([1 - r], a, x)


def _syllable(rng: np.random.Generator, f0_base: float, sr: int) -> np.ndarray:
    n = int(rng.uniform(0.12, 0.35) * sr)
    t = np.arange(n) / sr
    # Pitch contour: a slow rise or fall plus a little vibrato.
    f0 = (
        f0_base
        * (1 + rng.uniform(-0.15, 0.15) * t / t[-1])
        * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    )
    # Glottal source: a sawtooth (its 1/k harmonics are those of a voice); the formant filters
    # shape it, and its aliasing does not matter for plumbing tests.
    cycles = np.cumsum(f0) / sr
    source = 2 * (cycles - np.floor(cycles)) - 1
    voiced = sum(
        _resonator(source, f * rng.uniform(0.9, 1.1), 80 + 40 * i, sr)
        for i, f in enumerate(VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))])
    )
    voiced *= np.hanning(n)
    if rng.random() < 0.4:
        # An unvoiced consonant (fricative-like high-passed noise) before the vowel.
        m = int(rng.uniform(0.03, 0.12) * sr)
        burst = np.diff(rng.standard_normal(m + 1)) * np.hanning(m) * 0.3 * np.abs(voiced).max()
        voiced = np.concatenate([burst, voiced])
    return voiced


def synth_speech(rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """`n` samples of speech-like signal: utterances of 3-8 syllables separated by pauses."""
    f0_base = rng.uniform(90, 240)  # one "speaker" per file
    out = np.zeros(n)
    pos = int(rng.uniform(0.1, 0.5) * sr)
    while pos < n:
        for _ in range(rng.integers(3, 9)):
            syl = _syllable(rng, f0_base * rng.uniform(0.9, 1.1), sr)
            syl = syl[: n - pos] * rng.uniform(0.5, 1.0)
            out[pos : pos + len(syl)] += syl
            pos += len(syl) + int(rng.uniform(0.0, 0.06) * sr)
            if pos >= n:
                break
        pos += int(rng.uniform(0.2, 0.8) * sr)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12) * 0.05


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    m = next_fast_len(n)  # an FFT of a length with large prime factors is 10x slower
    spec = np.fft.rfft(rng.standard_normal(m))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    return np.fft.irfft(spec, m)[:n]


def synth_noise(kind: str, rng: np.random.Generator, n: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """`n` samples of one noise type from SYNTHETIC_NOISE_TYPES."""
    if kind == "white":
        noise = rng.standard_normal(n)
    elif kind == "pink":
        noise = _pink(rng, n)
    elif kind == "babble":
        noise = sum(synth_speech(rng, n, sr) for _ in range(4))
    elif kind == "hum":
        t = np.arange(n) / sr
        mains = rng.choice([50.0, 60.0])
        noise = sum(
            np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3, 5)
        )
        noise = noise + 0.05 * rng.standard_normal(n)
    elif kind == "bursts":
        # Non-stationary: pink noise switched on and off at random, with smooth edges.
        gate = np.zeros(n)
        pos = 0
        while pos < n:
            on = int(rng.uniform(0.1, 1.0) * sr)
            gate[pos : pos + on] = rng.uniform(0.3, 1.0)
            pos += on + int(rng.uniform(0.2, 1.5) * sr)
        gate = np.convolve(gate, np.hanning(401) / np.hanning(401).sum(), mode="same")
        noise = _pink(rng, n) * gate
    else:
        raise UserError(f"noise type {kind!r}: use one of {', '.join(SYNTHETIC_NOISE_TYPES)}")
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def synth_pair(
    rng: np.random.Generator, n: int, snr_db: float, kind: str, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) at exactly `snr_db` (power over the whole file), peak below 0.9."""
    clean = synth_speech(rng, n, sr)
    noise = synth_noise(kind, rng, n, sr)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    noisy = clean + noise
    gain = min(1.0, 0.9 / np.abs(noisy).max()) * rng.uniform(0.5, 1.0)
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32)


# What a corpus was made with (next to its archives); a call with the same settings reuses it.
SYNTHETIC_RECORD = ".synthetic.json"
SYNTHETIC_VERSION = 1  # bump when the signals change, so older corpora are made again
# Every file in the archives is stamped with this time, so the same seed gives byte-identical
# archives and a second run finds its earlier extraction still valid instead of redoing it.
SYNTHETIC_MTIME = 1_600_000_000


def _write_7z(folder: Path, archive: Path, arcname: str) -> None:
    import py7zr

    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (SYNTHETIC_MTIME, SYNTHETIC_MTIME))
    # Deflate: 3x faster than LZMA2's fastest preset here (the smoke test builds these archives on
    # every run) and read by py7zr and every 7z program alike.
    with py7zr.SevenZipFile(archive, "w", filters=[{"id": py7zr.FILTER_DEFLATE}]) as z:
        z.writeall(folder, arcname)


def make_synthetic_corpus(
    out_dir: Path,
    n_train: int = 16,
    n_test: int = 6,
    seed: int = 0,
    cfg: SyntheticConfig | None = None,
) -> Path:
    """Write train.7z, y_train.7z, test.7z, y_test.7z (noisy / clean, same names) into `out_dir`.

    Each archive holds one top folder named like the archive (as the Kaggle dataset is assumed
    to), so the reader's descent through single-child folders is exercised. A
    `synthetic_manifest.csv` records each file's duration, noise type and SNR. A second call
    with the same settings finds the corpus complete and returns at once.
    """
    cfg = cfg or SyntheticConfig()
    if n_train < 1 or n_test < 1:
        raise UserError(f"n_train={n_train}, n_test={n_test}: both must be at least 1")
    if not 0 < cfg.min_seconds <= cfg.max_seconds:
        raise UserError(
            f"SyntheticConfig seconds ({cfg.min_seconds}, {cfg.max_seconds}): need 0 < min <= max"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    request = {
        "version": SYNTHETIC_VERSION,
        "n_train": n_train,
        "n_test": n_test,
        "seed": seed,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
    }
    if _synthetic_corpus_present(out_dir, request):
        return out_dir  # the same seed and settings give the same files: nothing to redo
    (out_dir / SYNTHETIC_RECORD).unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for split, noisy_name, clean_name, count in (
            ("train", "train", "y_train", n_train),
            ("test", "test", "y_test", n_test),
        ):
            for i in range(count):
                name = f"{split}_{i:04d}.wav"
                seconds = float(rng.uniform(cfg.min_seconds, cfg.max_seconds))
                kind = SYNTHETIC_NOISE_TYPES[i % len(SYNTHETIC_NOISE_TYPES)]
                snr = float(rng.uniform(*cfg.snr_db))
                n = int(seconds * cfg.sample_rate)
                noisy, clean = synth_pair(rng, n, snr, kind, cfg.sample_rate)
                write_audio(Path(tmp) / noisy_name / name, noisy, cfg.sample_rate)
                write_audio(Path(tmp) / clean_name / name, clean, cfg.sample_rate)
                rows.append(
                    {
                        "split": split,
                        "name": name,
                        "seconds": f"{n / cfg.sample_rate:.3f}",
                        "noise": kind,
                        "snr_db": f"{snr:.2f}",
                    }
                )
            for folder in (noisy_name, clean_name):
                archive = out_dir / f"{folder}.7z"
                partial = archive.with_suffix(".7z.partial")
                _write_7z(Path(tmp) / folder, partial, folder)
                partial.replace(archive)  # never leave a half-written archive under the real name
    with open(out_dir / "synthetic_manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # Written last: its presence says every archive above is complete.
    archives = {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.7z"))}
    (out_dir / SYNTHETIC_RECORD).write_text(json.dumps({**request, "archives": archives}))
    return out_dir


def _synthetic_corpus_present(out_dir: Path, request: dict) -> bool:
    try:
        record = json.loads((out_dir / SYNTHETIC_RECORD).read_text())
    except (OSError, ValueError):
        return False
    archives = record.pop("archives", {})
    return record == request and all(
        (out_dir / name).is_file() and (out_dir / name).stat().st_size == size
        for name, size in archives.items()
    )


def remove_synthetic_corpus(out_dir: Path) -> None:
    """Delete what make_synthetic_corpus wrote (the archives and the manifest)."""
    for name in ("train", "y_train", "test", "y_test"):
        (Path(out_dir) / f"{name}.7z").unlink(missing_ok=True)
    (Path(out_dir) / "synthetic_manifest.csv").unlink(missing_ok=True)
    (Path(out_dir) / SYNTHETIC_RECORD).unlink(missing_ok=True)
    if Path(out_dir).is_dir() and not any(Path(out_dir).iterdir()):
        shutil.rmtree(out_dir)

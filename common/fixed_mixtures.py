"""Fixed mixtures written to disk from a real corpus's splits: a test set of whole utterances at
set SNRs (`make_testset`), and a paired corpus in the public dataset's layout
(`make_paired_corpus`). Same output for the same inputs."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.audio import SAMPLE_RATE, SILENCE_RMS, AudioError, load_audio, write_audio
from common.corpus import CorpusSplit, real_corpus_splits
from common.errors import UserError
from common.mixing import loop_to, mix_at_snr, rms


def make_testset(
    data_root: Path,
    out_dir: Path,
    n_items: int = 48,
    snrs: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0),
    seed: int = 0,
    exclude_noncommercial: bool = False,
    level_db: tuple[float, float] = (-35.0, -15.0),
) -> Path:
    """Write `out_dir`/noisy and /clean (same file names) plus testset.csv from the test split.

    Whole utterances (not crops), each test-split speech file used in turn; noise is looped or
    cropped to the utterance; the SNRs cycle through `snrs`. Same output for the same inputs.
    """
    if n_items < 1:
        raise UserError(f"n_items={n_items}: must be at least 1")
    split = real_corpus_splits(data_root, seed, exclude_noncommercial)["test"]
    out_dir = Path(out_dir)
    rows = _write_mixtures(
        data_root,
        split,
        out_dir / "noisy",
        out_dir / "clean",
        n_items,
        lambda i, rng: float(snrs[i % len(snrs)]),
        level_db,
        np.random.default_rng(seed),
    )
    _write_csv(out_dir / "testset.csv", rows)
    return out_dir


def make_paired_corpus(
    data_root: Path,
    out_dir: Path,
    snr_db: tuple[float, float] = (5.0, 20.0),
    seed: int = 0,
    exclude_noncommercial: bool = True,
    level_db: tuple[float, float] = (-35.0, -15.0),
) -> Path:
    """A fixed paired corpus made the way the team's public dataset was (each utterance once,
    with one noise at an SNR drawn from `snr_db`), in its layout: `train/` + `y_train/` from the
    training and validation speakers and noises, `test/` + `y_test/` from the test split (the
    speakers and noises `make_testset` uses), and pairs.csv. Same output for the same inputs."""
    splits = real_corpus_splits(data_root, seed, exclude_noncommercial)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for noisy_name, clean_name, split in (
        ("train", "y_train", CorpusSplit(
            splits["train"].speech + splits["val"].speech,
            splits["train"].noise + splits["val"].noise,
        )),
        ("test", "y_test", splits["test"]),
    ):  # fmt: skip
        written = _write_mixtures(
            data_root,
            split,
            out_dir / noisy_name,
            out_dir / clean_name,
            len(split.speech),
            lambda i, rng: float(rng.uniform(*snr_db)),
            level_db,
            rng,
            each_once=True,
        )
        rows += [{"split": noisy_name, **row} for row in written]
    _write_csv(out_dir / "pairs.csv", rows)
    return out_dir


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_mixtures(
    data_root: Path,
    split: CorpusSplit,
    noisy_dir: Path,
    clean_dir: Path,
    n_items: int,
    snr_of: Callable[[int, np.random.Generator], float],
    level_db: tuple[float, float],
    rng: np.random.Generator,
    each_once: bool = False,
) -> list[dict]:
    """Whole utterances of `split` (in a seeded order) mixed with a looped or cropped noise of
    `split`, SNR `snr_of(i, rng)`; written as same-named noisy/clean files. `each_once`: at most
    one mixture per utterance (fewer than `n_items` when some are silent or unreadable)."""
    speech_order = rng.permutation(len(split.speech))
    rows = []
    i = attempts = 0
    while len(rows) < n_items:
        if each_once and i >= len(split.speech):
            break
        attempts += 1
        if attempts > 4 * n_items + len(split.speech):
            raise UserError(f"{data_root}: too many silent or unreadable files in the test split")
        speech_path = split.speech[speech_order[i % len(split.speech)]]
        i += 1
        noise_path = split.noise[int(rng.integers(len(split.noise)))]
        snr = snr_of(len(rows), rng)
        level = float(rng.uniform(*level_db))
        try:
            speech = load_audio(speech_path, warn=True)
            noise = load_audio(noise_path, warn=True)
        except AudioError as exc:
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        if rms(speech) < SILENCE_RMS or rms(noise) < SILENCE_RMS:
            warnings.warn(f"{speech_path} or {noise_path}: silent, skipped", stacklevel=2)
            continue
        noise = loop_to(noise, len(speech), int(rng.integers(len(noise))))
        noisy, clean, _ = mix_at_snr(speech, noise, snr, level)
        name = f"{len(rows):04d}_{speech_path.stem}_snr{snr:g}.wav"
        if each_once:  # the speaker stays readable in the name (common.remix.pair_group)
            name = f"{speech_path.stem}.wav"
            if (clean_dir / name).exists():  # the same stem in two speech folders
                name = f"{speech_path.parent.name}_{name}"
        write_audio(noisy_dir / name, noisy)
        write_audio(clean_dir / name, clean)
        rows.append(
            {
                "name": name,
                "speech_file": speech_path.relative_to(data_root).as_posix(),
                "noise_file": noise_path.relative_to(data_root).as_posix(),
                "snr_db": f"{snr:g}" if not each_once else f"{snr:.2f}",
                "level_db": f"{level:.2f}",
                "seconds": f"{len(clean) / SAMPLE_RATE:.3f}",
            }
        )
    return rows

"""Paired noisy/clean recordings: finding the pairs in two folders, and the train/validation split.

Noisy and clean are paired by their path relative to the folder that holds the audio, never by
sort order. The team's data is the Kaggle dataset `earth16/libri-speech-noise-dataset`
(`common.kaggle_data` extracts it): noisy `test/` pairs with clean `y_test/`, 16 kHz WAVs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import list_audio
from common.errors import UserError

# Folder names that hold (noisy, clean) pairs, in the order they are tried.
PAIR_DIR_NAMES = (("noisy", "clean"), ("test", "y_test"))


@dataclass(frozen=True)
class AudioPair:
    """One noisy recording and its clean reference; `name` is the path relative to the data root."""

    name: str
    noisy: Path
    clean: Path


def is_hidden_entry(name: str) -> bool:
    """True for what archives and extraction leave beside the audio (not to be paired)."""
    # Archives made on macOS carry __MACOSX/ and ._* files; extraction leaves marker dot-files.
    return name.startswith((".", "__MACOSX"))


def audio_root(folder: Path) -> Path:
    """Descend through folders that hold nothing but one sub-folder (an archive's top folder).

    The archives' inner folder name is unknown, so pairing is relative to where the audio starts.
    """
    folder = Path(folder)
    while folder.is_dir():
        entries = [p for p in folder.iterdir() if not is_hidden_entry(p.name)]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        folder = entries[0]
    return folder


def _pair_key(path: Path, root: Path) -> str:
    # Relative path without the suffix, so noisy "a.wav" pairs with clean "a.flac".
    return path.relative_to(root).with_suffix("").as_posix()


def _audio_by_key(folder: Path, role: str) -> dict[str, Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: {role} folder not found; check the path")
    root = audio_root(folder)
    files = [
        p
        for p in list_audio(root)
        if not any(is_hidden_entry(q) for q in p.relative_to(root).parts)
    ]
    if not files:
        raise UserError(f"{folder}: {role} folder has no .wav/.flac files; check the path")
    by_key: dict[str, Path] = {}
    for path in files:
        key = _pair_key(path, root)
        if key in by_key:
            warnings.warn(
                f"{path}: same name as {by_key[key].name} in the {role} folder, ignored",
                stacklevel=3,
            )
            continue
        by_key[key] = path
    return by_key


def name_list(keys: list[str], limit: int = 5) -> str:
    """The first `limit` names, and how many more, for a warning."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def discover_pairs(noisy_dir: Path, clean_dir: Path) -> list[AudioPair]:
    """Pair the audio files of two folders by relative path; unpaired files are named in a warning."""
    noisy = _audio_by_key(noisy_dir, "noisy")
    clean = _audio_by_key(clean_dir, "clean")
    only_noisy = sorted(set(noisy) - set(clean))
    only_clean = sorted(set(clean) - set(noisy))
    if only_noisy:
        warnings.warn(
            f"{noisy_dir}: {len(only_noisy)} noisy file(s) without a clean match, skipped: "
            f"{name_list(only_noisy)}",
            stacklevel=2,
        )
    if only_clean:
        warnings.warn(
            f"{clean_dir}: {len(only_clean)} clean file(s) without a noisy match, skipped: "
            f"{name_list(only_clean)}",
            stacklevel=2,
        )
    keys = sorted(set(noisy) & set(clean))
    if not keys:
        raise UserError(
            f"{noisy_dir} and {clean_dir}: no file names in common; noisy and clean files must "
            "have the same relative paths"
        )
    noisy_root = audio_root(Path(noisy_dir))
    return [
        AudioPair(name=noisy[k].relative_to(noisy_root).as_posix(), noisy=noisy[k], clean=clean[k])
        for k in keys
    ]


def find_pair_dirs(root: Path) -> tuple[Path, Path]:
    """(noisy_dir, clean_dir) under `root`: `noisy/` + `clean/`, or Kaggle's `test/` + `y_test/`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; give a folder with noisy/ and clean/ inside")
    for base in dict.fromkeys((root, audio_root(root))):
        for noisy_name, clean_name in PAIR_DIR_NAMES:
            noisy, clean = base / noisy_name, base / clean_name
            if noisy.is_dir() and clean.is_dir():
                return noisy, clean
    found = (
        ", ".join(sorted(p.name for p in root.iterdir() if not is_hidden_entry(p.name)))
        or "nothing"
    )
    raise UserError(
        f"{root}: expected noisy/ and clean/ (or test/ and y_test/) folders, found {found}; "
        "arrange the pairs that way"
    )


def validation_count(n_pairs: int, val_fraction: float) -> int:
    """How many of `n_pairs` `split_pairs` holds out: the fraction, at least 1, never all."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction={val_fraction}: must be in [0, 1)")
    n_val = int(round(n_pairs * val_fraction))
    if val_fraction > 0 and n_pairs >= 2:
        n_val = min(max(n_val, 1), n_pairs - 1)
    return n_val


def split_pairs(
    pairs: list[AudioPair], val_fraction: float = 0.05, seed: int = 0
) -> tuple[list[AudioPair], list[AudioPair]]:
    """(train, validation) by a seeded shuffle of the name-sorted pairs: same split on any machine."""
    ordered = sorted(pairs, key=lambda p: p.name)
    n_val = validation_count(len(ordered), val_fraction)
    order = np.random.default_rng(seed).permutation(len(ordered))
    val_idx = set(order[:n_val].tolist())
    train = [p for i, p in enumerate(ordered) if i not in val_idx]
    val = [p for i, p in enumerate(ordered) if i in val_idx]
    return train, val

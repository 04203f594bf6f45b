"""Paired noisy/clean data: discovery, the Kaggle archives, aligned crops and the alignment guard.

The team's data is the Kaggle dataset `earth16/libri-speech-noise-dataset`: `train.7z` (noisy),
`y_train.7z` (clean), `test.7z`, `y_test.7z`, 16 kHz WAVs of 16-24 s. Noisy and clean are paired
by their path relative to the folder that holds the audio, never by sort order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.audio import (
    SAMPLE_RATE,
    AudioError,
    audio_info,
    list_audio,
    load_audio,
    read_segment,
)
from common.checks import number
from common.errors import UserError

# Folder names that hold (noisy, clean) pairs, in the order they are tried.
PAIR_DIR_NAMES = (("noisy", "clean"), ("test", "y_test"))


@dataclass(frozen=True)
class AudioPair:
    """One noisy recording and its clean reference; `name` is the path relative to the data root."""

    name: str
    noisy: Path
    clean: Path


def _is_hidden_entry(name: str) -> bool:
    # Archives made on macOS carry __MACOSX/ and ._* files; extraction leaves marker dot-files.
    return name.startswith((".", "__MACOSX"))


def audio_root(folder: Path) -> Path:
    """Descend through folders that hold nothing but one sub-folder (an archive's top folder).

    The archives' inner folder name is unknown, so pairing is relative to where the audio starts.
    """
    folder = Path(folder)
    while folder.is_dir():
        entries = [p for p in folder.iterdir() if not _is_hidden_entry(p.name)]
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
        if not any(_is_hidden_entry(q) for q in p.relative_to(root).parts)
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


def _pair_name_list(keys: list[str], limit: int = 5) -> str:
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
            f"{_pair_name_list(only_noisy)}",
            stacklevel=2,
        )
    if only_clean:
        warnings.warn(
            f"{clean_dir}: {len(only_clean)} clean file(s) without a noisy match, skipped: "
            f"{_pair_name_list(only_clean)}",
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
        ", ".join(sorted(p.name for p in root.iterdir() if not _is_hidden_entry(p.name)))
        or "nothing"
    )
    raise UserError(
        f"{root}: expected noisy/ and clean/ (or test/ and y_test/) folders, found {found}; "
        "arrange the pairs that way"
    )


# ---------------------------------------------------------------- the Kaggle archives

# The dataset's archives: (noisy, clean) for each split.
KAGGLE_SPLITS = {"train": ("train", "y_train"), "test": ("test", "y_test")}
EXTRACTED_MARKER = ".extracted.json"
# Written before extracting: marks a folder as ours, so an incomplete one may be deleted.
EXTRACTING_MARKER = ".extraction-started"


def _extracted_files(dest: Path) -> dict[str, int]:
    return {
        p.relative_to(dest).as_posix(): p.stat().st_size
        for p in sorted(dest.rglob("*"))
        if p.is_file() and p.name not in (EXTRACTED_MARKER, EXTRACTING_MARKER)
    }


def _archive_identity(archive: Path) -> dict:
    return {"archive": archive.name, "archive_bytes": archive.stat().st_size}


def is_extracted(archive: Path, dest: Path) -> bool:
    """True when `dest` holds a complete extraction of `archive` (marker present, no file missing)."""
    marker = Path(dest) / EXTRACTED_MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if {k: record.get(k) for k in ("archive", "archive_bytes")} != _archive_identity(archive):
        return False
    files = record.get("files", {})
    # A stat per file is cheap (7000 files: well under a second) and catches removed or cut files.
    return bool(files) and all(
        (Path(dest) / rel).is_file() and (Path(dest) / rel).stat().st_size == size
        for rel, size in files.items()
    )


def _extract_with_7z_binary(binary: str, archive: Path, dest: Path) -> None:
    proc = subprocess.run(
        [binary, "x", "-y", f"-o{dest}", str(archive)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
        raise UserError(
            f"{archive}: 7z could not extract it ({reason}); the archive is truncated or "
            "corrupt, download it again"
        )


def _extract_with_py7zr(archive: Path, dest: Path) -> None:
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, "r") as z:
            z.extractall(path=dest)
    except Exception as exc:  # py7zr raises many types (Bad7zFile, EOFError, CrcError, lzma...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{archive}: cannot extract it ({reason}); the archive is truncated or corrupt, "
            "download it again"
        ) from None


def extract_archive(archive: Path, dest: Path, *, use_binary: bool | None = None) -> Path:
    """Extract a .7z into `dest` once; returns `dest`.

    A marker listing every extracted file is written only after a successful extraction, so a
    second call returns at once and an interrupted or damaged extraction is redone from scratch.
    `use_binary=None` uses the `7z` program when installed (multi-threaded, much faster on the
    3 GB train archive) and py7zr otherwise.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found; check the path")
    if is_extracted(archive, dest):
        return dest
    if dest.exists() and any(dest.iterdir()):
        if not ((dest / EXTRACTING_MARKER).exists() or (dest / EXTRACTED_MARKER).exists()):
            raise UserError(
                f"{dest}: folder exists and is not an extraction of {archive.name}; "
                "choose an empty or new folder"
            )
        warnings.warn(
            f"{dest}: incomplete extraction of {archive.name}, extracting again", stacklevel=2
        )
        shutil.rmtree(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / EXTRACTING_MARKER).write_text(archive.name)
    except OSError as exc:
        raise UserError(
            f"{dest}: cannot write there ({exc.strerror}); choose a writable work dir"
        ) from None
    binary = shutil.which("7z") or shutil.which("7za") or shutil.which("7zz")
    if use_binary is None:
        use_binary = binary is not None
    if use_binary and binary is None:
        raise UserError("7z program not found; install p7zip-full or use py7zr (use_binary=False)")
    try:
        if use_binary:
            _extract_with_7z_binary(binary, archive, dest)
        else:
            _extract_with_py7zr(archive, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    files = _extracted_files(dest)
    if not files:
        raise UserError(f"{archive}: the archive is empty; download it again")
    record = {**_archive_identity(archive), "files": files}
    (dest / EXTRACTED_MARKER).write_text(json.dumps(record))
    return dest


def find_kaggle_items(root: Path, max_depth: int = 3) -> dict[str, Path]:
    """Map 'train', 'y_train', ... to an archive `<name>.7z` or a folder `<name>/` below `root`.

    Kaggle mounts a dataset under /kaggle/input/<slug>/, sometimes one folder deeper; an archive
    wins over a folder of the same name (its extraction is checked, a folder's is not).
    """
    wanted = {name for pair in KAGGLE_SPLITS.values() for name in pair}
    found: dict[str, Path] = {}
    level = [root]
    for _ in range(max_depth + 1):
        next_level = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                if _is_hidden_entry(entry.name):
                    continue
                if entry.is_file() and entry.suffix == ".7z" and entry.stem in wanted:
                    found.setdefault(entry.stem, entry)
                elif entry.is_dir() and entry.name in wanted:
                    found.setdefault(f"{entry.name}/", entry)
                elif entry.is_dir():
                    next_level.append(entry)
        level = next_level
    items = {}
    for name in wanted:
        if name in found:
            items[name] = found[name]
        elif f"{name}/" in found:
            items[name] = found[f"{name}/"]
    return items


@dataclass
class KaggleData:
    """Pairs of the Kaggle dataset after extraction."""

    train: list[AudioPair]
    test: list[AudioPair]


def prepare_kaggle_data(root: Path, work_dir: Path, *, need_train: bool = True) -> KaggleData:
    """Extract (once) and pair the Kaggle archives found under `root`, or use extracted folders.

    Archives are extracted into `work_dir/<name>/` (the input mount is read-only on Kaggle).
    """
    root, work_dir = Path(root), Path(work_dir)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; attach the dataset or check the path")
    items = find_kaggle_items(root)
    splits: dict[str, list[AudioPair]] = {"train": [], "test": []}
    for split, (noisy_name, clean_name) in KAGGLE_SPLITS.items():
        missing = [n for n in (noisy_name, clean_name) if n not in items]
        if missing:
            if split == "train" and not need_train:
                continue
            raise UserError(
                f"{root}: {', '.join(m + '.7z' for m in missing)} not found (nor an extracted "
                f"folder of that name); expected train.7z, y_train.7z, test.7z, y_test.7z"
            )
        dirs = []
        for name in (noisy_name, clean_name):
            item = items[name]
            dirs.append(extract_archive(item, work_dir / name) if item.is_file() else item)
        splits[split] = discover_pairs(dirs[0], dirs[1])
    return KaggleData(train=splits["train"], test=splits["test"])


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


# ---------------------------------------------------------------- aligned crops


def frames_at_rate(info, sr: int) -> int:
    """Length in samples at `sr` of a file whose header is `info` (from `audio_info`)."""
    return int(info.frames) if info.samplerate == sr else int(info.frames * sr / info.samplerate)


class PairedDataset(torch.utils.data.Dataset):
    """(noisy, clean) float32 tensors (N,), both cropped at ONE position.

    Training crops are random but reproducible: the position comes from (seed, epoch, index), so
    every epoch and every DataLoader worker sees different crops; the trainer calls `set_epoch`.
    Evaluation crops are the middle of each file (deterministic, and past any leading silence).
    Clips shorter than the segment are zero-padded; `segment_seconds=None` yields whole files.
    Pairs whose noisy and clean lengths differ are cut to the shorter (with a warning); pairs
    that cannot be read or are shorter than `min_seconds` are skipped with a warning.
    """

    def __init__(
        self,
        pairs: list[AudioPair],
        segment_seconds: float | None = 3.0,
        train: bool = True,
        seed: int = 0,
        *,
        sr: int = SAMPLE_RATE,
        min_seconds: float = 1.0,
    ) -> None:
        number("segment_seconds", segment_seconds, 0, lo_open=True, optional=True)
        self.segment = None if segment_seconds is None else int(round(segment_seconds * sr))
        self.train, self.seed, self.sr, self.epoch = train, seed, sr, 0
        self.pairs, self.lengths = self._usable(pairs, min_seconds)
        self._bad: set[int] = set()

    def _usable(
        self, pairs: list[AudioPair], min_seconds: float
    ) -> tuple[list[AudioPair], list[int]]:
        kept, lengths = [], []
        unreadable, short, mismatched, converted = [], [], [], []
        for pair in pairs:
            try:
                infos = [audio_info(pair.noisy), audio_info(pair.clean)]
            except AudioError as exc:
                unreadable.append(str(exc))
                continue
            if any(i.samplerate != self.sr or i.channels != 1 for i in infos):
                converted.append(pair.name)
            n_noisy, n_clean = (frames_at_rate(i, self.sr) for i in infos)
            length = min(n_noisy, n_clean)
            if length < min_seconds * self.sr:
                short.append(f"{pair.name} ({length / self.sr:.2f} s)")
                continue
            if abs(n_noisy - n_clean) > 1:  # resampling may round one sample differently
                mismatched.append(
                    f"{pair.name} (noisy {n_noisy / self.sr:.2f} s, clean {n_clean / self.sr:.2f} s)"
                )
            kept.append(pair)
            lengths.append(length)
        for message in unreadable[:5]:
            warnings.warn(f"{message}; pair skipped", stacklevel=3)
        if len(unreadable) > 5:
            warnings.warn(f"{len(unreadable) - 5} more unreadable pairs skipped", stacklevel=3)
        if short:
            warnings.warn(
                f"{len(short)} pair(s) shorter than {min_seconds} s skipped: {_pair_name_list(short)}",
                stacklevel=3,
            )
        if mismatched:
            warnings.warn(
                f"{len(mismatched)} pair(s) with different noisy/clean lengths, cut to the "
                f"shorter: {_pair_name_list(mismatched)}",
                stacklevel=3,
            )
        if converted:
            warnings.warn(
                f"{len(converted)} pair(s) not 16 kHz mono, converted on every read (slow): "
                f"{_pair_name_list(converted)}",
                stacklevel=3,
            )
        if not kept:
            where = pairs[0].noisy.parent if pairs else "the pair list"
            raise UserError(f"{where}: no usable pairs (all unreadable or under {min_seconds} s)")
        return kept, lengths

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Draw new training crops for this epoch (call before each epoch)."""
        self.epoch = int(epoch)

    def crop_start(self, index: int) -> int:
        """The one start sample used for both files of pair `index`."""
        if self.segment is None:
            return 0
        room = self.lengths[index] - self.segment
        if room <= 0:
            return 0
        if not self.train:
            return room // 2
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(0, room + 1))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        # A file that turns out bad only when decoded (NaN samples, a damaged frame) should not
        # end a long training run: warn once and use the next pair instead.
        for attempt in range(min(10, len(self.pairs))):
            i = (index + attempt) % len(self.pairs)
            if i in self._bad:
                continue
            try:
                return self._read_pair(i)
            except AudioError as exc:
                self._bad.add(i)
                warnings.warn(f"{exc}; pair skipped", stacklevel=2)
        raise UserError(
            f"{self.pairs[index].noisy.parent}: pairs near index {index} are all unreadable; "
            "check the data"
        )

    def _read_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair, length = self.pairs[index], self.lengths[index]
        start = self.crop_start(index)
        frames = length - start if self.segment is None else min(self.segment, length - start)
        noisy = read_segment(pair.noisy, start, frames, self.sr)
        clean = read_segment(pair.clean, start, frames, self.sr)
        if self.segment is not None and frames < self.segment:
            noisy = np.pad(noisy, (0, self.segment - frames))
            clean = np.pad(clean, (0, self.segment - frames))
        return torch.from_numpy(noisy), torch.from_numpy(clean)


# ---------------------------------------------------------------- the alignment guard

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


def check_alignment(dataset, n_pairs: int = 32, min_corr: float = PAIR_MIN_CORRELATION) -> float:
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

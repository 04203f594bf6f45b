"""Noisy speech mixed on the fly from clean-speech and noise folders, with leak-free splits.

Models are judged on unseen speakers and noises, so the train / validation / test split is by
SPEAKER for speech and by recording for noise, decided by a hash of the speaker or file name:
the same on every machine (never Python's salted `hash()`).
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.audio import (
    SAMPLE_RATE,
    AudioError,
    audio_info,
    frames_at_rate,
    list_audio,
    load_audio,
    read_segment,
    write_audio,
)
from common.errors import UserError

SPLIT_NAMES = ("train", "val", "test")
# RMS below this (-100 dBFS) is digital silence: no SNR can be defined against it.
SILENCE_RMS = 1e-5
# Files whose licence forbids training a model that ships (see ../shared/data/README.md).
NONCOMMERCIAL_LICENSE = re.compile(r"BY-NC|non-?commercial", re.IGNORECASE)
NONCOMMERCIAL_PREFIXES = (
    "noise/esc50/",  # ESC-50: CC BY-NC 3.0
    "pairs/vbd_train_p287/",  # the p287 pairs' repository: CC BY-NC 4.0
    "noise/vbd_train_residual/",  # derived from those p287 pairs (noisy - clean)
    "speech/vcc2016/",  # VCC 2016: treat as non-commercial (README)
)
# Speaker from the file name, in the MANIFEST's spelling, where the corpus convention shows it.
SPEAKER_PATTERNS = (
    (re.compile(r"^(\d+)-\d+-\d+$"), "libri{}"),  # LibriSpeech: speaker-chapter-utterance
    (re.compile(r"^(p\d{3})_\d+$"), "{}"),  # VCTK / VoiceBank
    (re.compile(r"^cmu_arctic_us_([a-z]+)_[ab]\d+$"), "arctic_{}"),
    (re.compile(r"^([a-z]+)_arctic_[ab]\d+$"), "arctic_{}"),
    (re.compile(r"^([ST][FM]\d)_\d+$"), "vcc2016_{}"),
    (re.compile(r"^LJ\d{3}-\d{4}$"), "ljspeech"),
)


@dataclass
class MixConfig:
    """Mixing settings: SNR and level ranges (dB), crop length (s), seed."""

    snr_db: tuple[float, float] = (5.0, 20.0)
    level_db: tuple[float, float] = (-35.0, -15.0)  # RMS of the mixture, dBFS
    segment_seconds: float = 3.0
    seed: int = 0
    # Training only: the share of mixtures whose noise is babble, several other talkers of the
    # training speech summed (speech-like noise, the hardest kind, absent from the noise folders).
    babble_prob: float = 0.0
    babble_talkers: tuple[int, int] = (3, 6)  # fewest, most talkers in one babble

    def __post_init__(self) -> None:
        if not 0.0 <= self.babble_prob <= 1.0:
            raise UserError(f"MixConfig.babble_prob={self.babble_prob}: use a value in 0..1")
        if not 2 <= self.babble_talkers[0] <= self.babble_talkers[1]:
            raise UserError(
                f"MixConfig.babble_talkers={self.babble_talkers}: need 2 <= fewest <= most"
            )
        for name in ("snr_db", "level_db"):
            low, high = getattr(self, name)
            if low > high:
                raise UserError(f"MixConfig.{name}={getattr(self, name)}: need low <= high")
        if self.level_db[1] > 0:
            raise UserError(f"MixConfig.level_db={self.level_db}: levels are dBFS, use values <= 0")
        if self.segment_seconds <= 0:
            raise UserError(f"MixConfig.segment_seconds={self.segment_seconds}: must be positive")


@dataclass
class CorpusSplit:
    """The speech and noise files of one split."""

    speech: list[Path] = field(default_factory=list)
    noise: list[Path] = field(default_factory=list)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db: float, level_db: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """(noisy, clean, gain): noise scaled to `snr_db` below the clean power, the mixture set to
    `level_db` dBFS RMS, then both scaled down together if the peak would exceed 0.99.

    The SNR is the power ratio over the whole segment; the common gain keeps it exact.
    """
    clean = clean.astype(np.float64)
    noise = noise.astype(np.float64)
    p_clean, p_noise = np.mean(clean**2), np.mean(noise**2)
    if p_clean < SILENCE_RMS**2 or p_noise < SILENCE_RMS**2:
        raise UserError("mix_at_snr: clean or noise is silent; an SNR cannot be set")
    noisy = clean + noise * np.sqrt(p_clean / p_noise / 10 ** (snr_db / 10))
    gain = 10 ** (level_db / 20) / _rms(noisy)
    peak = np.max(np.abs(noisy)) * gain
    if peak > 0.99:  # never clip: scale noisy and clean together
        gain *= 0.99 / peak
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32), float(gain)


def _loop_to(wav: np.ndarray, frames: int, offset: int) -> np.ndarray:
    reps = -(-(frames + offset) // len(wav))
    return np.tile(wav, reps)[offset : offset + frames]


@dataclass
class MixItem:
    """One mixture and how it was made (for tests and the test-set CSV)."""

    noisy: np.ndarray
    clean: np.ndarray
    speech_file: Path
    noise_file: Path
    snr_db: float
    level_db: float
    babble_files: list[Path] = field(default_factory=list)  # when the noise is babble


class MixingDataset(torch.utils.data.Dataset):
    """(noisy, clean) float32 tensors (N,) mixed on the fly; `length` items per epoch.

    Item `i` is reproducible from (seed, epoch, i) in training (the trainer calls `set_epoch`)
    and from (seed, i) in evaluation. Speech shorter than the segment is zero-padded, noise
    shorter than the segment is looped; silent files are skipped with a warning.
    """

    def __init__(
        self,
        speech_files: list[Path],
        noise_files: list[Path],
        cfg: MixConfig | None = None,
        train: bool = True,
        length: int = 1000,
        *,
        sr: int = SAMPLE_RATE,
    ) -> None:
        self.cfg = cfg or MixConfig()
        self.train, self.length, self.sr, self.epoch = train, int(length), sr, 0
        self.segment = int(round(self.cfg.segment_seconds * sr))
        self.speech, self.speech_frames = self._readable(speech_files, "speech")
        self.noise, self.noise_frames = self._readable(noise_files, "noise")
        self._silent: set[Path] = set()
        if self.length < 1:
            raise UserError(f"{type(self).__name__} length={length}: must be at least 1")

    def _readable(self, files: list[Path], role: str) -> tuple[list[Path], list[int]]:
        kept, frames = [], []
        for path in sorted(Path(p) for p in files):
            try:
                n = frames_at_rate(audio_info(path), self.sr)
            except AudioError as exc:
                warnings.warn(f"{exc}; skipped", stacklevel=3)
                continue
            if n == 0:
                warnings.warn(f"{path}: no samples, skipped", stacklevel=3)
                continue
            kept.append(path)
            frames.append(n)
        if not kept:
            raise UserError(f"MixingDataset: no readable {role} files; check the {role} folder")
        return kept, frames

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw new mixtures for this epoch (training only; evaluation items never change)."""
        self.epoch = int(epoch)

    def _is_silent_file(self, path: Path) -> bool:
        if path in self._silent:
            return True
        if _rms(self._load(path)) < SILENCE_RMS:
            warnings.warn(f"{path}: silent (no energy), skipped", stacklevel=4)
            self._silent.add(path)
            return True
        return False

    def _read(self, path: Path, start: int, frames: int) -> np.ndarray:
        """`frames` samples of a file from `start` (zero-padded); `RemixDataset` reads residuals."""
        return read_segment(path, start, frames, self.sr)

    def _load(self, path: Path) -> np.ndarray:
        """A whole file."""
        return load_audio(path, self.sr)

    def _excluded_noise(self, speech_file: Path) -> Path | None:
        """A noise file this utterance must not be mixed with (none here)."""
        return None

    def _draw(
        self,
        rng: np.random.Generator,
        files: list[Path],
        frames: list[int],
        loop: bool,
        exclude: Path | None = None,
    ):
        # The same number of draws happens whatever is cached, so items stay reproducible.
        for _ in range(20):
            idx, u_start, u_offset = int(rng.integers(len(files))), rng.random(), rng.random()
            path, n = files[idx], frames[idx]
            if path in self._silent or path == exclude:
                continue
            if n >= self.segment:
                start = int(u_start * (n - self.segment + 1))
                wav = self._read(path, start, self.segment)
            elif loop:
                whole = self._load(path)
                wav = _loop_to(whole, self.segment, int(u_offset * len(whole)))
            else:
                wav = self._read(path, 0, self.segment)  # zero-padded
            if _rms(wav) >= SILENCE_RMS:
                return path, wav
            # A silent file is remembered and never used again; a silent crop (a long pause)
            # of a file with energy is simply redrawn.
            self._is_silent_file(path)
        raise UserError(f"MixingDataset: 20 draws gave only silence; check {files[0].parent}")

    def mix_item(self, index: int) -> MixItem:
        """Item `index` with its provenance (speech and noise file, SNR, level)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        seed = [self.cfg.seed, self.epoch, index] if self.train else [self.cfg.seed, index]
        rng = np.random.default_rng(seed)
        snr = float(rng.uniform(*self.cfg.snr_db))
        level = float(rng.uniform(*self.cfg.level_db))
        speech_file, speech = self._draw(rng, self.speech, self.speech_frames, loop=False)
        # No extra draw without babble: the items of earlier runs stay exactly as they were.
        babble = self.train and self.cfg.babble_prob > 0 and rng.random() < self.cfg.babble_prob
        # Drawn even when babble replaces it, so that the talkers come from the same stream of
        # random numbers whatever the noise folder holds (one short read per babble item).
        noise_file, noise = self._draw(
            rng, self.noise, self.noise_frames, loop=True, exclude=self._excluded_noise(speech_file)
        )
        talkers: list[Path] = []
        if babble:
            noise, talkers = self._babble(rng)
            noise_file = talkers[0]
        noisy, clean, _ = mix_at_snr(speech, noise, snr, level)
        return MixItem(noisy, clean, speech_file, noise_file, snr, level, talkers)

    def _babble(self, rng: np.random.Generator) -> tuple[np.ndarray, list[Path]]:
        """Several talkers of this split's speech at equal level, summed (looped when short)."""
        low, high = self.cfg.babble_talkers
        total = np.zeros(self.segment, dtype=np.float64)
        files = []
        for _ in range(int(rng.integers(low, high + 1))):
            path, wav = self._draw(rng, self.speech, self.speech_frames, loop=True)
            total += wav / max(_rms(wav), SILENCE_RMS)
            files.append(path)
        return total.astype(np.float32), files

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.mix_item(index)
        return torch.from_numpy(item.noisy), torch.from_numpy(item.clean)


# ---------------------------------------------------------------- splits of a real corpus


def read_manifest(data_root: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.csv rows by relative path ({} when the file is absent)."""
    path = Path(data_root) / "MANIFEST.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f) if row.get("path")}


def speaker_of(rel_path: str, manifest_row: dict[str, str] | None = None) -> str:
    """Speaker id of a speech file: MANIFEST's `speaker ...` note, else the corpus naming
    convention, else its folder (files of one folder are then kept together, the safe side)."""
    if manifest_row:
        if manifest_row.get("speaker"):
            return manifest_row["speaker"]
        found = re.search(r"\bspeaker (\S+)", manifest_row.get("license_note", ""))
        if found:
            return found.group(1)
    stem = Path(rel_path).stem
    for pattern, template in SPEAKER_PATTERNS:
        match = pattern.match(stem)
        if match:
            return template.format(*match.groups())
    prefix = re.match(r"^(spk\d+)_", stem)
    parent = Path(rel_path).parent.as_posix()
    return f"{parent}/{prefix.group(1)}" if prefix else parent


def is_noncommercial(rel_path: str, manifest_row: dict[str, str] | None = None) -> bool:
    """True for files that must not train a model that ships (ESC-50, p287, vcc2016)."""
    if rel_path.startswith(NONCOMMERCIAL_PREFIXES):
        return True
    return bool(manifest_row and NONCOMMERCIAL_LICENSE.search(manifest_row.get("license_note", "")))


def stable_rank(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def assign_splits(
    groups: dict[str, list[Path]], seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)
) -> dict[str, list[Path]]:
    """Whole groups to "train" / "val" / "test": groups ordered by a hash of (seed, name), the
    first `fractions[1]` of them to test, the next `fractions[0]` to val (at least one group
    each when there are three or more), the rest to train."""
    ordered = sorted(groups, key=lambda g: stable_rank(g, seed))
    n = len(ordered)
    n_val, n_test = (int(round(n * f)) for f in fractions)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    out: dict[str, list[Path]] = {name: [] for name in SPLIT_NAMES}
    for i, group in enumerate(ordered):
        split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        out[split].extend(groups[group])
    return {k: sorted(v) for k, v in out.items()}


def real_corpus_splits(
    data_root: Path, seed: int = 0, exclude_noncommercial: bool = False
) -> dict[str, CorpusSplit]:
    """Speech (by speaker) and noise (by recording) of `data_root`/speech and /noise, split
    80/10/10 into "train", "val", "test" with no speaker or recording in two splits."""
    data_root = Path(data_root)
    manifest = read_manifest(data_root)
    groups: dict[str, dict[str, list[Path]]] = {"speech": {}, "noise": {}}
    for kind in groups:
        folder = data_root / kind
        if not folder.is_dir():
            raise UserError(f"{folder}: folder not found; the data root needs speech/ and noise/")
        files = list_audio(folder)
        if not files:
            raise UserError(f"{folder}: no .wav/.flac files; check the data root")
        for path in files:
            rel = path.relative_to(data_root).as_posix()
            row = manifest.get(rel)
            if exclude_noncommercial and is_noncommercial(rel, row):
                continue
            # Noise: each file is its own recording.
            key = speaker_of(rel, row) if kind == "speech" else rel
            groups[kind].setdefault(key, []).append(path)
    speech = assign_splits(groups["speech"], seed)
    noise = assign_splits(groups["noise"], seed)
    for split in SPLIT_NAMES:
        if not speech[split] or not noise[split]:
            raise UserError(
                f"{data_root}: too few speakers or noise recordings to fill the {split} split; "
                "add data (at least 3 speakers and 3 noise files)"
            )
    return {s: CorpusSplit(speech=speech[s], noise=noise[s]) for s in SPLIT_NAMES}


# ---------------------------------------------------------------- a fixed test set on disk


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
    snr_of,
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
        if _rms(speech) < SILENCE_RMS or _rms(noise) < SILENCE_RMS:
            warnings.warn(f"{speech_path} or {noise_path}: silent, skipped", stacklevel=2)
            continue
        noise = _loop_to(noise, len(speech), int(rng.integers(len(noise))))
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

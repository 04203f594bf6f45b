"""Noisy speech mixed on the fly from clean-speech and noise files: the mixing itself and the
dataset that draws reproducible mixtures (`MixingDataset`).

Which files each split gets (by speaker for speech, by recording for noise) is
`common.corpus`'s job; fixed mixtures written to disk are `common.fixed_mixtures`'.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.audio import (
    SAMPLE_RATE,
    SILENCE_RMS,
    AudioError,
    audio_info,
    frames_at_rate,
    load_audio,
    read_segment,
)
from common.augment import augment_item
from common.errors import UserError


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
    # Training only: the share of speech crops changed by common.augment (speed, EQ, bandwidth,
    # room) before mixing; the changed crop is the target too.
    augment_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("babble_prob", "augment_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"MixConfig.{name}={getattr(self, name)}: use a value in 0..1")
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


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for an empty signal)."""
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
    gain = 10 ** (level_db / 20) / rms(noisy)
    peak = np.max(np.abs(noisy)) * gain
    if peak > 0.99:  # never clip: scale noisy and clean together
        gain *= 0.99 / peak
    return (noisy * gain).astype(np.float32), (clean * gain).astype(np.float32), float(gain)


def loop_to(wav: np.ndarray, frames: int, offset: int) -> np.ndarray:
    """`frames` samples of `wav` repeated end to end, starting at `offset`."""
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
        if rms(self._load(path)) < SILENCE_RMS:
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
                wav = loop_to(whole, self.segment, int(u_offset * len(whole)))
            else:
                wav = self._read(path, 0, self.segment)  # zero-padded
            if rms(wav) >= SILENCE_RMS:
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
        if self.train and self.cfg.augment_prob > 0:  # its own generator: other draws unchanged
            speech = augment_item(
                speech, np.random.default_rng([*seed, 1]), self.cfg.augment_prob, self.sr
            )
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
            total += wav / max(rms(wav), SILENCE_RMS)
            files.append(path)
        return total.astype(np.float32), files

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.mix_item(index)
        return torch.from_numpy(item.noisy), torch.from_numpy(item.clean)

"""Training and evaluation examples from fixed noisy/clean pairs: both files cropped at ONE
position, reproducibly."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from common.audio import SAMPLE_RATE, AudioError, audio_info, frames_at_rate, read_segment
from common.checks import number
from common.errors import UserError
from common.pairs import AudioPair, name_list


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
                f"{len(short)} pair(s) shorter than {min_seconds} s skipped: {name_list(short)}",
                stacklevel=3,
            )
        if mismatched:
            warnings.warn(
                f"{len(mismatched)} pair(s) with different noisy/clean lengths, cut to the "
                f"shorter: {name_list(mismatched)}",
                stacklevel=3,
            )
        if converted:
            warnings.warn(
                f"{len(converted)} pair(s) not 16 kHz mono, converted on every read (slow): "
                f"{name_list(converted)}",
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

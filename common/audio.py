"""Audio I/O and the STFT used by every model.

Everything is read with `soundfile` (never torchaudio: its API drifted under the team twice)
and resampled with `soxr`. Audio inside the project is always mono float32 at 16 kHz in [-1, 1].
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from common.config import SAMPLE_RATE, StftConfig
from common.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac")


class AudioError(UserError):
    """An audio file that cannot be used as it is."""


def _open_error(path: Path, exc: Exception) -> AudioError:
    if not path.exists():
        return AudioError(f"{path}: file not found; check the path")
    if path.stat().st_size == 0:
        return AudioError(f"{path}: file is empty (0 bytes); re-copy or remove it")
    if isinstance(exc, PermissionError) or not os.access(path, os.R_OK):
        return AudioError(
            f"{path}: permission denied (this user cannot read it); fix its permissions, "
            "e.g. chmod u+r, or run as its owner"
        )
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return AudioError(f"{path}: not a readable WAV/FLAC file ({reason}); re-export it or remove it")


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of an audio file (rate, channels, frames) without decoding it."""
    path = Path(path)
    try:
        return sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for bad files
        raise _open_error(path, exc) from None


# About -100 dBFS, below 16-bit quantisation: digital silence. Nothing to score, and no SNR can be
# set against it.
SILENCE_RMS = 1e-5


def frames_at_rate(info: sf._SoundFileInfo, sr: int) -> int:
    """Length in samples at `sr` of a file whose header is `info` (from `audio_info`)."""
    return int(info.frames) if info.samplerate == sr else int(info.frames * sr / info.samplerate)


def open_audio(path: str | Path) -> sf.SoundFile:
    """An audio file opened for reading (header parsed, nothing decoded): `audio_info`'s one-line
    errors, and the file is opened once where its header and samples are both needed."""
    path = Path(path)
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types for bad files
        raise _open_error(path, exc) from None


def _check_samples(wav: np.ndarray, path: Path | str) -> np.ndarray:
    if wav.size == 0:
        raise AudioError(f"{path}: contains no samples; re-export it or remove it")
    if not np.all(np.isfinite(wav)):
        raise AudioError(
            f"{path}: contains NaN or infinite samples; the file is corrupt, re-export it"
        )
    peak = float(np.max(np.abs(wav)))
    if peak > 1.0:
        # Float files may exceed full scale; scaling keeps the waveform shape, clipping would not.
        warnings.warn(f"{path}: peak {peak:.2f} exceeds 1.0, scaled down to 0.99", stacklevel=3)
        wav = wav * (0.99 / peak)
    return wav.astype(np.float32, copy=False)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; a 1-D array is returned as is."""
    return wav if wav.ndim == 1 else wav.mean(axis=1)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr (high quality); a no-op when the rates match."""
    if orig_sr == target_sr:
        return wav.astype(np.float32, copy=False)
    return soxr.resample(wav, orig_sr, target_sr, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, *, warn: bool = False) -> np.ndarray:
    """Read a file as mono float32 at `sr`.

    `warn=True` reports a stereo mixdown or a resampling with a warning naming the file, which
    dataset code wants (the team's data should already be 16 kHz mono) and user-facing tools
    such as `enhance` do not.
    """
    path = Path(path)
    try:
        wav, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise _open_error(path, exc) from None
    if warn and wav.shape[1] > 1:
        warnings.warn(f"{path}: {wav.shape[1]} channels, mixed down to mono", stacklevel=2)
    if warn and file_sr != sr:
        warnings.warn(f"{path}: sample rate {file_sr} Hz, resampled to {sr} Hz", stacklevel=2)
    wav = _check_samples(to_mono(wav), path)
    return _check_samples(resample(wav, file_sr, sr), path)


def read_segment(path: str | Path, start: int, frames: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read `frames` samples from `start` (in samples at `sr`), zero-padded past the end.

    Seeks instead of decoding the whole file: the Kaggle clips are ~17 s and training keeps 3 s.
    Files at another rate are decoded whole and resampled (rare, and correct over fast).
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != sr:
                wav = load_audio(path, sr)[start : start + frames]
            else:
                f.seek(min(start, f.frames))
                wav = (
                    _check_samples(to_mono(f.read(frames, dtype="float32", always_2d=True)), path)
                    if start < f.frames
                    else np.zeros(0, np.float32)
                )
    except AudioError:
        raise
    except Exception as exc:
        raise _open_error(path, exc) from None
    if len(wav) < frames:
        wav = np.pad(wav, (0, frames - len(wav)))
    return wav.astype(np.float32, copy=False)


def write_audio(path: str | Path, wav: np.ndarray | torch.Tensor, sr: int = SAMPLE_RATE) -> Path:
    """Write mono audio as 16-bit PCM (format from the suffix: .wav or .flac)."""
    path = Path(path)
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: refusing to write NaN/inf samples (the model output is broken)")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wav, -1.0, 1.0), sr, subtype="PCM_16")
    return path


def list_audio(folder: str | Path) -> list[Path]:
    """All WAV/FLAC files below `folder`, sorted for reproducibility."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
    )


def stft_window(cfg: StftConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """The analysis/synthesis window of `cfg` (Hann, or its square root)."""
    w = torch.hann_window(cfg.win, periodic=True, device=device)
    return w.sqrt() if cfg.window == "sqrt_hann" else w


def stft(wav: torch.Tensor, cfg: StftConfig, *, pad_mode: str = "reflect") -> torch.Tensor:
    """(..., N) real waveform -> (..., F, T) complex spectrum.

    Frame t is centred on sample t * hop; half a window is padded at both ends, mirrored by
    default. `pad_mode="constant"` pads zeros instead: what a stream sees before its first
    sample, so causal models run offline exactly as they stream (see common.enhance).
    `istft` inverts either.
    """
    shape = wav.shape
    spec = torch.stft(
        wav.reshape(-1, shape[-1]).float(),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win,
        window=stft_window(cfg, wav.device),
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: StftConfig, length: int) -> torch.Tensor:
    """(..., F, T) complex spectrum -> (..., length) waveform (the inverse of `stft`)."""
    shape = spec.shape
    wav = torch.istft(
        spec.reshape(-1, *shape[-2:]),
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win,
        window=stft_window(cfg, spec.device),
        center=True,
        length=length,
    )
    return wav.reshape(*shape[:-2], length)


def roundtrip_error(wav: torch.Tensor, cfg: StftConfig) -> float:
    """Max absolute error of istft(stft(x)): a self-check that the pipeline is invertible."""
    return float((istft(stft(wav, cfg), cfg, wav.shape[-1]) - wav).abs().max())

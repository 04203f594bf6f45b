"""Enhance audio with a trained checkpoint: any sample rate, mono or multichannel, any length.

`load_enhancer(ckpt)` rebuilds the model and its STFT from what the checkpoint records (name,
config, STFT settings) and refuses, in one line, a checkpoint whose weights do not fit them or
that belongs to another model than the one asked for. `Enhancer.enhance(wav, sr)` returns audio
of the same shape and rate as its input: it resamples to the model's rate, enhances, and
resamples back. Channels are kept: each channel is enhanced on its own (a stereo file comes out
stereo). Long signals are processed in overlapping chunks with a linear cross-fade, so memory
stays bounded for attention models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm.auto import tqdm

from common.audio import AudioError, StftConfig, audio_info, istft, list_audio, resample, stft
from common.checkpoint import load_checkpoint
from common.env import select_device
from common.errors import UserError
from common.models import build_model

# Formats soundfile writes for the suffixes `enhance` accepts; others fall back to 16-bit PCM.
_WRITABLE_SUBTYPES = {
    ".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    ".flac": ("PCM_16", "PCM_24"),
}


def _state_dict_mismatch(model: nn.Module, weights: dict) -> str:
    """A short description of why `weights` do not load into `model` ("" when they do)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(weights))
        if tuple(own[k].shape) != tuple(weights[k].shape)
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            parts.append(
                f"{len(items)} {label} ({', '.join(items[:2])}{', ...' if len(items) > 2 else ''})"
            )
    return "; ".join(parts)


@dataclass
class Enhancer:
    """A model in eval mode with its STFT; `enhance(wav, sr)` keeps shape, length and rate."""

    model: nn.Module
    stft: StftConfig
    device: torch.device
    model_name: str = "?"
    chunk_seconds: float = 30.0  # longer inputs are enhanced in chunks...
    overlap_seconds: float = 0.5  # ...that overlap by this much and are cross-faded

    @property
    def sample_rate(self) -> int:
        return self.stft.sample_rate

    @torch.no_grad()
    def _enhance_block(self, x: np.ndarray) -> np.ndarray:
        """(C, N) at the model rate -> (C, N)."""
        n = x.shape[-1]
        # torch.stft reflect-pads half a window: shorter clips are zero-padded to one window.
        padded = np.pad(x, ((0, 0), (0, max(0, self.stft.n_fft - n))))
        wav = torch.from_numpy(np.ascontiguousarray(padded)).to(self.device)
        est = self.model(stft(wav, self.stft)).to(torch.complex64)
        return istft(est, self.stft, padded.shape[-1])[:, :n].cpu().numpy()

    def _enhance_chunked(self, x: np.ndarray) -> np.ndarray:
        """(C, N) -> (C, N) in overlapping chunks; overlaps fade linearly from one to the next."""
        n = x.shape[-1]
        size = max(int(self.chunk_seconds * self.sample_rate), self.stft.n_fft)
        if n <= size:
            return self._enhance_block(x)
        overlap = min(int(self.overlap_seconds * self.sample_rate), size // 2)
        out = np.zeros_like(x)
        weight = np.zeros(n, dtype=np.float32)
        ramp = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
        start = 0
        while True:
            end = min(start + size, n)
            w = np.ones(end - start, dtype=np.float32)
            if start > 0:
                w[:overlap] = ramp
            if end < n:
                w[-overlap:] = ramp[::-1]
            out[:, start:end] += self._enhance_block(x[:, start:end]) * w
            weight[start:end] += w
            if end == n:
                break
            start = end - overlap
        return out / weight

    def enhance(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Enhance (N,) or (N, channels) audio at rate `sr`; the result has the same shape and rate."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim not in (1, 2) or wav.shape[0] == 0:
            raise UserError(
                f"enhance: expected (samples,) or (samples, channels) audio, got shape {wav.shape}"
            )
        if not np.all(np.isfinite(wav)):
            raise UserError(
                "enhance: input has NaN or infinite samples; fix or re-export the audio"
            )
        channels = wav.reshape(wav.shape[0], -1).T  # (C, N)
        x = np.stack([resample(c, sr, self.sample_rate) for c in channels])
        y = self._enhance_chunked(x)
        out = np.stack([resample(c, self.sample_rate, sr) for c in y])
        # Resampling there and back can be a sample off: match the input length exactly.
        n = wav.shape[0]
        out = out[:, :n] if out.shape[1] >= n else np.pad(out, ((0, 0), (0, n - out.shape[1])))
        return out[0] if wav.ndim == 1 else np.ascontiguousarray(out.T)


def load_enhancer(
    ckpt_path: str | Path,
    device: torch.device | str | None = None,
    *,
    expect_model: str | None = None,
    chunk_seconds: float = 30.0,
) -> Enhancer:
    """Rebuild the checkpoint's model and STFT; refuse mismatches in one line naming the file."""
    path = Path(ckpt_path)
    state = load_checkpoint(path)
    name, config = state["model_name"], state["model_config"]
    if expect_model is not None and name != expect_model:
        raise UserError(
            f"{path}: checkpoint is for model {name!r}, not {expect_model!r}; "
            "use a checkpoint of that model or drop --model"
        )
    try:
        stft_cfg = StftConfig(**state["stft"])
        model = build_model(name, **config)
    except (UserError, TypeError) as exc:
        raise UserError(f"{path}: cannot rebuild the model it records ({exc})") from None
    n_freq = getattr(getattr(model, "cfg", None), "n_freq", stft_cfg.n_freq)
    if n_freq != stft_cfg.n_freq:
        raise UserError(
            f"{path}: model config n_freq={n_freq} does not match its STFT (n_fft={stft_cfg.n_fft} "
            f"gives {stft_cfg.n_freq} bins); the checkpoint mixes two configs, retrain it"
        )
    mismatch = _state_dict_mismatch(model, state["model"])
    if mismatch:
        raise UserError(
            f"{path}: weights do not fit model {name!r} with its recorded config ({mismatch}); "
            "the checkpoint comes from another model or config"
        )
    model.load_state_dict(state["model"])
    device = torch.device(device) if device is not None else select_device("auto")
    return Enhancer(model.to(device).eval(), stft_cfg, device, name, chunk_seconds)


def _output_subtype(src_subtype: str, dst: Path) -> str:
    allowed = _WRITABLE_SUBTYPES.get(dst.suffix.lower(), ())
    return src_subtype if src_subtype in allowed else "PCM_16"


def enhance_file(enhancer: Enhancer, src: str | Path, dst: str | Path) -> Path:
    """Enhance one WAV/FLAC file into `dst` with the same rate, length, channels and sample format."""
    src, dst = Path(src), Path(dst)
    info = audio_info(src)  # one-line AudioError for unreadable files
    try:
        wav, sr = sf.read(str(src), dtype="float32")
    except Exception as exc:
        raise AudioError(f"{src}: could not decode ({type(exc).__name__}); re-export it") from None
    if wav.shape[0] == 0:
        raise AudioError(f"{src}: contains no samples; remove it")
    if not np.all(np.isfinite(wav)):
        raise AudioError(
            f"{src}: contains NaN or infinite samples; the file is corrupt, re-export it"
        )
    out = enhancer.enhance(wav, sr)
    if not np.all(np.isfinite(out)):
        raise AudioError(f"{src}: the model produced NaN/inf samples; the checkpoint is broken")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), np.clip(out, -1.0, 1.0), sr, subtype=_output_subtype(info.subtype, dst))
    return dst


def enhance_path(
    enhancer: Enhancer, src: str | Path, dst: str | Path, *, progress: bool = True
) -> list[Path]:
    """Enhance a file (into file `dst`, or into folder `dst` when it is one) or a folder of
    WAV/FLAC files (into folder `dst`, keeping relative paths). Returns the written files."""
    src, dst = Path(src), Path(dst)
    if src.is_file():
        target = dst / src.name if dst.is_dir() else dst
        if target.suffix.lower() not in _WRITABLE_SUBTYPES:
            raise UserError(f"{target}: output must end in .wav or .flac")
        if target.resolve() == src.resolve():
            raise UserError(f"{target}: output would overwrite the input; choose another OUT")
        jobs = [(src, target)]
    elif src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: input {src} is a folder, so OUT must be a folder too")
        if dst.resolve() == src.resolve():
            raise UserError(f"{dst}: output folder is the input folder; choose another OUT")
        files = list_audio(src)
        if not files:
            raise UserError(f"{src}: no .wav/.flac files found; check the folder")
        jobs = [(f, dst / f.relative_to(src)) for f in files]
    else:
        raise UserError(f"{src}: input not found; give a WAV/FLAC file or a folder of them")
    written = []
    for s, d in tqdm(jobs, desc="enhance", unit="file", disable=not progress or len(jobs) < 2):
        written.append(enhance_file(enhancer, s, d))
    return written

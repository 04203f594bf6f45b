"""Enhance audio with a trained model: any sample rate, mono or multichannel, any length.

One waveform path serves every back-end. `Enhancer(backend).enhance(wav, sr)` returns audio of
the shape and rate of its input: the channels are resampled to the model's rate, turned into
their STFT, passed through the back-end (complex spectrum in, complex spectrum out), turned back
and resampled to `sr`. Back-ends: `TorchBackend` here (a PyTorch model), `OnnxBackend` in
common.export (an exported graph, no model code) and `StreamingBackend` in common.streaming (the
model one frame at a time). The VAD gate (common.vad.VadGatedEnhancer) wraps an `Enhancer`.

Long signals: a back-end that carries its state from call to call (a causal model) gets the
spectrum in consecutive runs of frames, which is exact (equal to one pass) in bounded memory;
any other back-end gets overlapping waveform chunks, cross-faded linearly.

Padding: a causal back-end sees the STFT a stream sees, zeros before the first sample and after
the last (`stft(pad_mode="constant")`), not the mirrored samples of torch.stft's default that a
stream cannot know; so `enhance` and `enhance --streaming` agree to float rounding on whole
files. Non-causal models keep the mirrored padding.

`load_model(ckpt)` is the one way a checkpoint becomes a model: the recorded name, config, STFT
and weights must fit together, or a one-line error names the file. `enhance_path` writes each
output to a temporary name and renames it into place, keeps existing outputs unless told to
overwrite, and never reads or writes inside its own output folder.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import soundfile as sf
import torch
from torch import nn

from common.atomic import remove_stale_temp_files, temp_prefix
from common.atomic import write_atomically as write_whole
from common.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    StftConfig,
    istft,
    list_audio,
    open_audio,
    resample,
    stft,
)
from common.env import select_device
from common.errors import UserError
from common.progress import progress as progress_bar
from common.streaming import is_streamable

# Formats soundfile writes for the suffixes `enhance` accepts; others fall back to 16-bit PCM.
_WRITABLE_SUBTYPES = {
    ".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    ".flac": ("PCM_16", "PCM_24"),
}
_SOUNDFILE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
# Chunks only bound memory; shorter ones than this would be mostly cross-fade, and longer ones
# than the maximum would not bound it (a 10-minute chunk takes several GB).
MIN_CHUNK_SECONDS = 1.0
MAX_CHUNK_SECONDS = 120.0
DEFAULT_CHUNK_SECONDS = 30.0
# Outputs of a folder run that may wait for the writer thread (each is held in memory meanwhile).
WRITES_AHEAD = 2


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


def check_chunk_seconds(seconds: float) -> float:
    """`seconds` if it is a usable chunk length (MIN_CHUNK_SECONDS..MAX_CHUNK_SECONDS), else a
    UserError."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not (math.isfinite(seconds) and MIN_CHUNK_SECONDS <= seconds <= MAX_CHUNK_SECONDS)
    ):
        raise UserError(
            f"--chunk-seconds {seconds}: use a number of seconds from {MIN_CHUNK_SECONDS:g} to "
            f"{MAX_CHUNK_SECONDS:g} (default {DEFAULT_CHUNK_SECONDS:g}); it only bounds memory"
        )
    return seconds


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """`y` cut or zero-padded to `n` samples on its last axis (resampling can be a sample off)."""
    if y.shape[-1] >= n:
        return y[..., :n]
    return np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])])


class SpectralBackend(Protocol):
    """A model behind `Enhancer`: complex spectrum (C, F, T) in, enhanced (C, F, T) out, on CPU.

    `causal`: the model never looks ahead, so it gets stream (zero) padding. `carries_state`:
    consecutive calls continue one signal from the last `reset()`, so a long spectrum can be fed
    in runs of frames instead of cross-faded chunks.
    """

    stft: StftConfig
    model_name: str
    device: str
    causal: bool
    carries_state: bool

    def reset(self) -> None: ...

    def __call__(self, spec: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    """A PyTorch model (fp32 or dynamically quantized) as a `SpectralBackend`; a streamable
    model (causal, `forward_stateful`) carries its state from call to call."""

    def __init__(
        self, model: nn.Module, stft_cfg: StftConfig, device: torch.device | str = "cpu"
    ) -> None:
        self.torch_device = torch.device(device)
        self.model = model.to(self.torch_device).eval()
        self.stft = stft_cfg
        self.model_name = str(getattr(model, "name", type(model).__name__))
        self.device = str(self.torch_device)
        self.causal = self.carries_state = is_streamable(model)
        self.state: list | None = None

    def reset(self) -> None:
        self.state = None

    @torch.inference_mode()
    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        spec = spec.to(self.torch_device)
        if self.carries_state:
            if self.state is None:
                self.state = self.model.init_state(spec.shape[0], self.torch_device)
            out, self.state = self.model.forward_stateful(spec, self.state)
        else:
            out = self.model(spec)
        return out.to(torch.complex64).cpu()


@dataclass
class Enhancer:
    """The one waveform wrapper: `enhance(wav, sr)` keeps shape, length and rate (see above)."""

    backend: SpectralBackend
    chunk_seconds: float = (
        DEFAULT_CHUNK_SECONDS  # longer inputs are processed in chunks (memory stays bounded)
    )
    overlap_seconds: float = 0.5  # stateless back-ends: chunks overlap by this and are cross-faded

    def __post_init__(self) -> None:
        check_chunk_seconds(self.chunk_seconds)
        if not (math.isfinite(self.overlap_seconds) and self.overlap_seconds >= 0):
            raise UserError(f"overlap_seconds={self.overlap_seconds}: must be >= 0")

    @property
    def stft(self) -> StftConfig:
        return self.backend.stft

    @property
    def sample_rate(self) -> int:
        return self.backend.stft.sample_rate

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def device(self) -> str:
        return self.backend.device

    def _one_pass(self, x: np.ndarray) -> np.ndarray:
        """(C, N) at the model rate -> (C, N): STFT, the back-end from a fresh state, ISTFT."""
        cfg, n = self.stft, x.shape[-1]
        if self.backend.causal:
            # Zeros on both sides, as a stream has; the extra half window at the end lets the
            # frames that a stream computes for the last samples exist offline too.
            padded, mode = np.pad(x, ((0, 0), (0, cfg.n_fft // 2))), "constant"
        else:
            # Mirrored padding needs more than half a window: very short clips get zeros appended.
            padded, mode = np.pad(x, ((0, 0), (0, max(0, cfg.n_fft - n)))), "reflect"
        spec = stft(torch.from_numpy(np.ascontiguousarray(padded)), cfg, pad_mode=mode)
        self.backend.reset()
        if self.backend.carries_state:
            step = max(1, int(self.chunk_seconds * cfg.sample_rate / cfg.hop_length))
            out = torch.empty_like(spec, dtype=torch.complex64)
            for i in range(0, spec.shape[-1], step):
                out[..., i : i + step] = self.backend(spec[..., i : i + step])
        else:
            out = self.backend(spec)
        return istft(out, cfg, padded.shape[-1])[:, :n].numpy()

    def _enhance_channels(self, x: np.ndarray) -> np.ndarray:
        """(C, N) -> (C, N); a stateless back-end gets overlapping chunks faded into each other."""
        n = x.shape[-1]
        size = max(int(self.chunk_seconds * self.sample_rate), self.stft.n_fft)
        if self.backend.carries_state or n <= size:
            return self._one_pass(x)
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
            out[:, start:end] += self._one_pass(x[:, start:end]) * w
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
        channels = wav.reshape(wav.shape[0], -1).T  # (C, N): all channels in one batch
        x = np.stack([resample(c, sr, self.sample_rate) for c in channels])
        y = self._enhance_channels(x)
        out = fit_length(np.stack([resample(c, self.sample_rate, sr) for c in y]), wav.shape[0])
        return out[0] if wav.ndim == 1 else np.ascontiguousarray(out.T)


def load_model(
    ckpt_path: str | Path,
    device: torch.device | str = "cpu",
    *,
    expect_model: str | None = None,
) -> tuple[nn.Module, StftConfig]:
    """The checkpoint's model (eval mode, on `device`) and its STFT; every mismatch between the
    recorded name, config, STFT and weights is refused in one line naming the file."""
    # Imported here: the ONNX path (common.export) uses this module without any model code.
    from common.checkpoint import load_checkpoint
    from common.models import build_model

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
    return model.to(device).eval(), stft_cfg


def load_enhancer(
    ckpt_path: str | Path,
    device: torch.device | str | None = None,
    *,
    expect_model: str | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
) -> Enhancer:
    """`Enhancer` over the checkpoint's PyTorch model (device: auto-selected when None)."""
    check_chunk_seconds(chunk_seconds)
    device = torch.device(device) if device is not None else select_device("auto")
    model, stft_cfg = load_model(ckpt_path, device, expect_model=expect_model)
    return Enhancer(TorchBackend(model, stft_cfg, device), chunk_seconds)


# --- writing files: temporary name, then rename; existing files kept unless told -------------


def _cannot_write(dst: Path, exc: OSError) -> str:
    blocker = next((p for p in dst.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{dst}: cannot write there ({blocker} is a file, not a folder); choose another path"
    reason = exc.strerror or type(exc).__name__
    return f"{dst}: cannot write there ({reason}); choose another path"


def prepare_output_folder(dst: str | Path) -> None:
    """Create `dst`'s folder and prove a file can be written in it, before any work is done;
    a one-line UserError names the path otherwise."""
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(
            prefix=temp_prefix(dst, ".probe"), suffix=".probe", dir=dst.parent
        )
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(_cannot_write(dst, exc)) from None


def write_atomically(
    dst: str | Path, write: Callable[[BinaryIO], None], *, overwrite: bool = False
) -> bool:
    """`common.atomic.write_atomically` without overwriting by default (an existing `dst`, e.g.
    another run's output, is kept: returns False), its OS errors as one line naming `dst`.
    No tidying here: `enhance_path` removes killed runs' leftovers once per folder."""
    try:
        return write_whole(dst, write, overwrite=overwrite)
    except OSError as exc:
        raise UserError(_cannot_write(Path(dst), exc)) from None


def _output_subtype(src_subtype: str, dst: Path) -> str:
    allowed = _WRITABLE_SUBTYPES.get(dst.suffix.lower(), ())
    return src_subtype if src_subtype in allowed else "PCM_16"


def _enhanced_writer(enhancer: Enhancer, src: Path, dst: Path) -> Callable[[BinaryIO], None]:
    """Enhance `src`; returns the function that writes the result in `dst`'s format (the same
    rate, length, channels and, where `dst`'s format allows it, sample format as `src`)."""
    with open_audio(src) as f:  # one open per file; one-line AudioError for unreadable files
        src_subtype, sr = f.subtype, f.samplerate
        try:
            wav = f.read(dtype="float32")
        except Exception as exc:
            raise AudioError(
                f"{src}: could not decode ({type(exc).__name__}); re-export it"
            ) from None
    if wav.shape[0] == 0:
        raise AudioError(f"{src}: contains no samples; remove it")
    if not np.all(np.isfinite(wav)):
        raise AudioError(
            f"{src}: contains NaN or infinite samples; the file is corrupt, re-export it"
        )
    out = enhancer.enhance(wav, sr)
    if not np.all(np.isfinite(out)):
        raise AudioError(f"{src}: the model produced NaN/inf samples; the checkpoint is broken")
    subtype, fmt = _output_subtype(src_subtype, dst), _SOUNDFILE_FORMATS[dst.suffix.lower()]
    return lambda f: sf.write(f, np.clip(out, -1.0, 1.0), sr, subtype=subtype, format=fmt)


def enhance_file(
    enhancer: Enhancer, src: str | Path, dst: str | Path, *, overwrite: bool = False
) -> bool:
    """Enhance one WAV/FLAC file into `dst` with the same rate, length, channels and sample
    format, written through `write_atomically`. False when `dst` exists and `overwrite` is off
    (e.g. a concurrent run wrote it first): that file is kept."""
    src, dst = Path(src), Path(dst)
    return write_atomically(dst, _enhanced_writer(enhancer, src, dst), overwrite=overwrite)


@dataclass
class EnhanceRun:
    """What `enhance_path` did: outputs written, existing outputs kept, inputs that failed, and
    what a folder run skipped (with the reason)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, one-line reason)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, SKIP_* reason)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# Why a folder run leaves a file out (single-file mode reads any of these formats, but a folder
# is mirrored with the same names, and only .wav and .flac are written).
SKIP_FORMAT = "not WAV/FLAC (enhance it alone, with an OUT ending in .wav or .flac)"
SKIP_BROKEN_LINK = "a symbolic link to nothing"
SKIP_NOT_AUDIO = "not audio"
# Suffixes of the other formats soundfile reads (and so single-file mode accepts).
_OTHER_AUDIO_SUFFIXES = (
    ".aiff", ".aif", ".au", ".caf", ".mp3", ".ogg", ".oga", ".opus", ".w64", ".rf64", ".snd",
)  # fmt: skip


def _skipped_in_folder(src: Path) -> list[tuple[Path, str]]:
    """The files below `src` that `list_audio` leaves out, each with its reason."""
    skipped = []
    for p in sorted(src.rglob("*")):
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            continue
        if p.is_symlink() and not p.exists():
            skipped.append((p, SKIP_BROKEN_LINK))
        elif p.is_dir() or p.name.startswith("."):
            continue
        elif p.suffix.lower() in _OTHER_AUDIO_SUFFIXES:
            skipped.append((p, SKIP_FORMAT))
        else:
            skipped.append((p, SKIP_NOT_AUDIO))
    return skipped


def _plan_jobs(src: Path, dst: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """(input, output) pairs and the files a folder run skips; refuses outputs that would land
    on inputs."""
    skipped: list[tuple[Path, str]] = []
    if src.is_file():
        target = dst / src.name if dst.is_dir() else dst
        if target.suffix.lower() not in _WRITABLE_SUBTYPES:
            raise UserError(f"{target}: output must end in .wav or .flac")
        jobs = [(src, target)]
    elif src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst}: input {src} is a folder, so OUT must be a folder too")
        out_root = dst.resolve()
        if out_root == src.resolve():
            raise UserError(f"{dst}: output folder is the input folder; choose another OUT")
        # OUT inside IN: what is in OUT (earlier outputs, or files the user put there) is never
        # read as input, so a run never enhances its own outputs.
        files = list_audio(src)
        skipped = _skipped_in_folder(src)
        if _inside(out_root, src.resolve()):
            files = [f for f in files if not _inside(f.resolve(), out_root)]
            skipped = [(f, r) for f, r in skipped if not _inside(f.absolute(), dst.absolute())]
        if not files:
            found = f" ({len(skipped)} other file(s) skipped)" if skipped else ""
            raise UserError(
                f"{src}: no .wav/.flac files found (outside OUT){found}; check the folder"
            )
        jobs = [(f, dst / f.relative_to(src)) for f in files]
    elif src.is_symlink():
        raise UserError(f"{src}: a symbolic link to nothing; give a WAV/FLAC file or a folder")
    else:
        raise UserError(f"{src}: input not found; give a WAV/FLAC file or a folder of them")
    inputs = {f.resolve() for f, _ in jobs}
    for _, d in jobs:
        if d.resolve() in inputs:
            raise UserError(
                f"{d}: would be both an input and an output (OUT {dst} overlaps IN {src}); "
                "choose an OUT outside IN"
            )
    return jobs, skipped


def enhance_path(
    enhancer: Enhancer,
    src: str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> EnhanceRun:
    """Enhance a file (into file `dst`, or into folder `dst` when it is one) or a folder of
    WAV/FLAC files (into folder `dst`, keeping relative paths).

    An existing output is kept unless `overwrite`: for a file that is a one-line error, for a
    folder a warning naming each kept file. In a folder, a file that fails is named in a warning
    and the others are still written; the caller reports `failed` (`enhance` exits 2).
    """
    src, dst = Path(src), Path(dst)
    jobs, skipped = _plan_jobs(src, dst)
    run = EnhanceRun(skipped=skipped)
    for path, reason in skipped:
        if reason != SKIP_NOT_AUDIO:
            warnings.warn(f"{path}: skipped, {reason}", stacklevel=2)
    single = src.is_file()
    if not overwrite:
        existing = [d for _, d in jobs if d.exists()]
        if single and existing:
            raise UserError(
                f"{existing[0]}: exists; pass --overwrite to replace it, or choose another OUT"
            )
        for d in existing:
            warnings.warn(f"{d}: exists, kept; pass --overwrite to replace it", stacklevel=2)
        run.kept += existing
        jobs = [(s, d) for s, d in jobs if not d.exists()]
    # Every output folder is created and proven writable before the first file is processed;
    # what killed runs left there is removed (never a running writer's temporaries).
    for first_in_folder in {d.parent: d for _, d in reversed(jobs)}.values():
        prepare_output_folder(first_in_folder)
        for stale in remove_stale_temp_files(first_in_folder.parent):
            warnings.warn(f"{stale}: removed, left by a killed run", stacklevel=2)

    def settle(s: Path, d: Path, writing: Future) -> None:
        try:
            written = writing.result()
        except UserError as exc:
            if single:
                raise
            warnings.warn(f"{exc}", stacklevel=3)
            run.failed.append((s, str(exc)))
            return
        if written:
            run.written.append(d)
        else:
            warnings.warn(f"{d}: written meanwhile by another run, kept", stacklevel=3)
            run.kept.append(d)

    # Each output is written (and made durable, see `write_atomically`) on a writer thread while
    # the next file is enhanced; at most WRITES_AHEAD outputs wait in memory for it.
    pending: deque[tuple[Path, Path, Future]] = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="enhance-writer") as writer:
        for s, d in progress_bar(
            jobs, desc="enhance", unit="file", disable=not progress or len(jobs) < 2
        ):
            try:
                write = _enhanced_writer(enhancer, s, d)
            except UserError as exc:
                if single:
                    raise
                warnings.warn(f"{exc}", stacklevel=2)
                run.failed.append((s, str(exc)))
                continue
            pending.append((s, d, writer.submit(write_atomically, d, write, overwrite=overwrite)))
            while len(pending) > WRITES_AHEAD:
                settle(*pending.popleft())
        while pending:
            settle(*pending.popleft())
    return run

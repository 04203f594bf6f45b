"""Enhance files and folders with an `Enhancer` (common.enhance).

Each output is written whole under a temporary name and renamed into place (common.atomic), so a
kill never leaves a partial file; existing outputs are kept unless told to overwrite; a folder's
files that cannot be enhanced are reported by reason; nothing is read or written inside the
output folder. Writes run on a thread a few files behind the model."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from common.atomic import remove_stale_temp_files, temp_prefix
from common.atomic import write_atomically as write_whole
from common.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    list_audio,
    open_audio,
)
from common.enhance import Enhancer
from common.errors import UserError
from common.progress import progress as progress_bar

# Formats soundfile writes for the suffixes `enhance` accepts; others fall back to 16-bit PCM.
_WRITABLE_SUBTYPES = {
    ".wav": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    ".flac": ("PCM_16", "PCM_24"),
}
_SOUNDFILE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}

# Outputs of a folder run that may wait for the writer thread (each is held in memory meanwhile).
WRITES_AHEAD = 2


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

    def failed(s: Path, exc: UserError) -> None:
        # One file alone fails the command; in a folder it is reported and the rest go on.
        if single:
            raise exc
        warnings.warn(f"{exc}", stacklevel=3)
        run.failed.append((s, str(exc)))

    def settle(s: Path, d: Path, writing: Future) -> None:
        try:
            written = writing.result()
        except UserError as exc:
            failed(s, exc)
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
                failed(s, exc)
                continue
            pending.append((s, d, writer.submit(write_atomically, d, write, overwrite=overwrite)))
            while len(pending) > WRITES_AHEAD:
                settle(*pending.popleft())
        while pending:
            settle(*pending.popleft())
    return run

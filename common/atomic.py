"""Files written whole or not at all: a temporary file beside the target, renamed over it.

`os.replace` is atomic on POSIX and Windows, so a reader sees the previous file or the new one,
never half of one, and a crash mid-write leaves the previous file intact. A process killed
mid-write (SIGKILL, a dead Kaggle session) leaves only its hidden temporary file behind
(`.NAME.<random>.tmp`); the next write of the same target removes it.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def remove_stale_temp_files(path: Path) -> None:
    """Delete the temporary files that killed writers of `path` left behind."""
    # mkstemp's 8 random characters: never the temporary file of a longer name ("a.wav.x.wav").
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'?' * 8}.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def set_usual_permissions(path: Path) -> None:
    """Give a finished temporary file the permissions a plain `open` would (mkstemp's 0600 would
    hide it from other users)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on leaving the block without an error, flush it to
    disk and rename it over `path` (its folder is created). On an error, `path` is untouched.

        with atomic_write(out / "summary.json") as f:
            json.dump(summary, f)
    """
    if "w" not in mode:
        raise ValueError(f"atomic_write mode {mode!r}: a write mode ('w' or 'wb') is needed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        set_usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

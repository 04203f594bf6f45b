"""Files written whole or not at all: a temporary file beside the target, renamed over it.

`os.replace` is atomic on POSIX and Windows, so a reader sees the previous file or the new one,
never half of one, and a crash mid-write leaves the previous file intact. A process killed
mid-write (SIGKILL, a dead Kaggle session) leaves only its hidden temporary file behind.

Temporary names are `.NAME.<host>-<pid>.<random>.tmp`, NAME cut so the whole stays within the
file system's 255 bytes (a legal 254-byte target must still be writable). The owner in the name
is what makes tidying safe: `remove_stale_temp_files` removes a leftover only when the process
that wrote it is gone (same host, pid no longer running), or, for a name without an owner (an
older version's) or another host's, when it is older than STALE_TEMP_HOURS. A concurrent run's
temporaries are never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

NAME_MAX_BYTES = 255  # one file name on ext4, xfs, btrfs, APFS, NTFS (UTF-8 bytes on Linux)
STALE_TEMP_HOURS = 24.0  # leftovers whose owner cannot be checked are removed after this
_RANDOM_CHARS = 8  # what tempfile.mkstemp adds
HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_NAME = re.compile(
    r"^\.(?P<name>.+?)\.(?:(?P<host>[0-9a-f]{6})-(?P<pid>[0-9]+)\.)?[a-z0-9_]{8}\.(?:tmp|probe)$"
)


def _owner() -> str:
    return f"{HOST_TAG}-{os.getpid()}"


def _cut_to_bytes(name: str, limit: int) -> str:
    """`name` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    return name.encode("utf-8")[: max(limit, 1)].decode("utf-8", errors="ignore")


def temp_prefix(path: Path, suffix: str = ".tmp") -> str:
    """mkstemp's prefix for a temporary beside `path`: `.NAME.<host>-<pid>.`, NAME cut so that
    prefix + random part + `suffix` fit in NAME_MAX_BYTES."""
    owner = _owner()
    room = NAME_MAX_BYTES - len(f"..{owner}.") - _RANDOM_CHARS - len(suffix.encode())
    return f".{_cut_to_bytes(path.name, room)}.{owner}."


def _process_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd pid): assume it runs
    return True


def is_stale_temp_file(path: Path, now: float | None = None) -> bool:
    """Whether `path` is a temporary of this module's writers that no running process owns."""
    match = _TEMP_NAME.match(path.name)
    if match is None:
        return False
    if match["host"] == HOST_TAG and not _process_running(int(match["pid"])):
        return True
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_TEMP_HOURS * 3600


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temporaries that killed writers left in `folder` (see the module docstring);
    returns what was removed. A concurrent writer's temporaries stay."""
    removed = []
    try:
        candidates = [p for p in Path(folder).glob(".*") if p.name.endswith((".tmp", ".probe"))]
    except OSError:
        return removed
    now = time.time()
    for stale in candidates:
        if is_stale_temp_file(stale, now):
            try:
                stale.unlink()
                removed.append(stale)
            except OSError:
                pass
    return removed


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
    remove_stale_temp_files(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
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

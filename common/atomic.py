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
from collections.abc import Callable, Iterator
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


# Test hook: called with the stage ("written", "synced", "published") and the file at each point
# of a write, so a test can kill the writer there (tests/test_run_store.py); None in normal use.
_fault: Callable[[str, Path], None] | None = None


def _at(stage: str, path: Path) -> None:
    if _fault is not None:
        _fault(stage, path)


def _check_mode(mode: str) -> None:
    if "w" not in mode:
        raise ValueError(f"atomic write mode {mode!r}: a write mode ('w' or 'wb') is needed")


def _temporary(path: Path) -> tuple[int, Path]:
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    return fd, Path(tmp_name)


def _seal(f: IO, tmp: Path) -> None:
    """Flush and make durable (fsync): after a power cut the target holds the whole file or
    nothing, never an empty file a later run would keep as done."""
    f.flush()
    _at("written", tmp)
    os.fsync(f.fileno())


def _publish(tmp: Path, path: Path, overwrite: bool) -> bool:
    """Give the sealed temporary its name in one step; False when `path` exists and may not be
    replaced (the hard link refuses an existing name, so concurrent writers never splice)."""
    _at("synced", tmp)
    set_usual_permissions(tmp)
    if overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: check, then rename
            if path.exists():
                return False
            os.replace(tmp, path)
    _at("published", path)
    return True


def write_atomically(
    path: str | Path,
    write: Callable[[IO], None],
    *,
    mode: str = "wb",
    overwrite: bool = True,
    **open_kwargs: Any,
) -> bool:
    """The atomic writer: `write(f)` fills a temporary file beside `path`, which is sealed and
    moved into place. With `overwrite` it replaces `path`; without, an existing `path` is kept
    (returns False). The temporary is removed on any error, which is re-raised. The folder must
    exist: `atomic_write` creates it and tidies leftovers; `common.enhance` does that once per
    folder (a concurrent run's temporaries are its own)."""
    _check_mode(mode)
    path = Path(path)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            write(f)
            _seal(f, tmp)
        return _publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """`write_atomically` as a block, replacing `path` (its folder is created and killed
    writers' leftovers in it removed). On an error inside the block, `path` is untouched.

        with atomic_write(out / "summary.json") as f:
            json.dump(summary, f)
    """
    _check_mode(mode)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path.parent)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            _seal(f, tmp)
        _publish(tmp, path, overwrite=True)
    finally:
        tmp.unlink(missing_ok=True)

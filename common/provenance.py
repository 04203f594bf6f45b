"""Where files came from: the sources' git commit and a file's sha256.

Standard library only: the builders (which never need torch) and the notebooks use the same
lookups. Outside a git checkout (a Kaggle session) the git answers are None.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 10
HASH_BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def git(repo: Path | None, *args: str) -> str | None:
    """`git ARGS` run in `repo` (None: the current folder): its stripped output, or None when
    git is missing, fails or is not in a checkout."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_head(repo: Path | None = None, *, short: bool = False) -> str | None:
    """The commit checked out in `repo` (abbreviated with `short`), or None outside git."""
    return git(repo, "rev-parse", *(["--short"] if short else []), "HEAD") or None


def git_commit(repo: Path | None = None) -> tuple[str, bool]:
    """(HEAD commit, tracked files have uncommitted changes); ("unknown", True) outside git."""
    head = git_head(repo)
    status = git(repo, "status", "--porcelain", "--untracked-files=no")
    if head is None or status is None:
        return "unknown", True
    return head, bool(status)

"""Checks that downloaded Kaggle outputs are what their names claim.

kaggle 2.2.4's `kernels output` writes whatever the download URL returned, HTTP error bodies
included, under the expected file name. Every pulled file is therefore checked before it is
recorded: JSON parses, checkpoints load with `weights_only=True`, audio opens, images have their
magic bytes, and no file is a storage or HTML error page in disguise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.provenance import sha256_file

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
HTML_SUFFIXES = (".html", ".htm")
_IMAGE_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".jpeg": b"\xff\xd8\xff"}
# Google Cloud Storage (where Kaggle serves outputs from) answers errors with this XML body.
_STORAGE_ERROR = re.compile(rb"^\s*<\?xml[^>]*>\s*<Error>\s*<Code>", re.IGNORECASE)
_HTML_PAGE = re.compile(rb"^\s*(<!doctype html|<html)", re.IGNORECASE)


def _json_error_body(data: Any) -> bool:
    # {"code": 403, "message": "..."} or {"error": ...} and nothing else is an API error body.
    if not isinstance(data, dict) or not data:
        return False
    if not set(data) <= {"code", "message", "error", "status", "details"}:
        return False
    code = data.get("code")
    return "error" in data or (isinstance(code, int) and code >= 400)


def check_output_file(path: Path) -> None:
    """UserError naming `path` when its content does not match its name."""
    suffix = path.suffix.lower()
    head = path.read_bytes()[:4096]
    if _STORAGE_ERROR.match(head):
        raise UserError(f"{path}: the download is a storage error page, not the file; pull again")
    if _HTML_PAGE.match(head) and suffix not in HTML_SUFFIXES:
        raise UserError(f"{path}: the download is an HTML page, not the file; pull again")
    if suffix == ".json" or (suffix not in (".log", ".txt") and head[:1] == b"{"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if suffix == ".json":
                raise UserError(f"{path}: not valid JSON ({exc}); pull again") from exc
            data = None
        if _json_error_body(data):
            raise UserError(f"{path}: the download is an API error body ({head[:120]!r})")
    if suffix in CHECKPOINT_SUFFIXES:
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a truncated or foreign file
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise UserError(f"{path}: not a loadable checkpoint ({msg}); pull again") from exc
    elif suffix in AUDIO_SUFFIXES:
        import soundfile

        try:
            soundfile.info(str(path))
        except RuntimeError as exc:
            raise UserError(f"{path}: not readable audio ({exc}); pull again") from exc
    elif suffix in _IMAGE_MAGIC and not head.startswith(_IMAGE_MAGIC[suffix]):
        raise UserError(f"{path}: not a {suffix[1:].upper()} image; pull again")


def check_examples(run_dir: Path) -> None:
    """The listening examples' index (examples/index.json) names only files that are there."""
    from common.examples import read_examples

    try:
        read_examples(run_dir)
    except ValueError as exc:
        raise UserError(f"{exc}; pull again") from None


def verify_outputs(folder: Path) -> dict[str, dict[str, Any]]:
    """Check every file under `folder`; returns {relative name: {"sha256", "bytes"}}."""
    from common.examples import EXAMPLES_DIR, EXAMPLES_INDEX

    records: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        check_output_file(path)
        name = path.relative_to(folder).as_posix()
        records[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.name == EXAMPLES_INDEX and path.parent.name == EXAMPLES_DIR:
            check_examples(path.parent.parent)
    return records

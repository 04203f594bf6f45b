"""The team's Kaggle dataset: its .7z archives extracted once, and its train/test pairs.

The dataset `earth16/libri-speech-noise-dataset` holds `train.7z` (noisy), `y_train.7z` (clean),
`test.7z`, `y_test.7z`: 16 kHz WAVs of 16-24 s. Kaggle mounts it read-only under
/kaggle/input/<slug>/, so archives are extracted into a work folder, with a marker that makes a
second call free and an interrupted extraction start again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.pairs import AudioPair, discover_pairs, is_hidden_entry

# The dataset's archives: (noisy, clean) for each split.
KAGGLE_SPLITS = {"train": ("train", "y_train"), "test": ("test", "y_test")}
EXTRACTED_MARKER = ".extracted.json"
# Written before extracting: marks a folder as ours, so an incomplete one may be deleted.
EXTRACTING_MARKER = ".extraction-started"


def _extracted_files(dest: Path) -> dict[str, int]:
    return {
        p.relative_to(dest).as_posix(): p.stat().st_size
        for p in sorted(dest.rglob("*"))
        if p.is_file() and p.name not in (EXTRACTED_MARKER, EXTRACTING_MARKER)
    }


def _archive_identity(archive: Path) -> dict:
    return {"archive": archive.name, "archive_bytes": archive.stat().st_size}


def is_extracted(archive: Path, dest: Path) -> bool:
    """True when `dest` holds a complete extraction of `archive` (marker present, no file missing)."""
    marker = Path(dest) / EXTRACTED_MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if {k: record.get(k) for k in ("archive", "archive_bytes")} != _archive_identity(archive):
        return False
    files = record.get("files", {})
    # A stat per file is cheap (7000 files: well under a second) and catches removed or cut files.
    return bool(files) and all(
        (Path(dest) / rel).is_file() and (Path(dest) / rel).stat().st_size == size
        for rel, size in files.items()
    )


def _extract_with_7z_binary(binary: str, archive: Path, dest: Path) -> None:
    proc = subprocess.run(
        [binary, "x", "-y", f"-o{dest}", str(archive)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
        raise UserError(
            f"{archive}: 7z could not extract it ({reason}); the archive is truncated or "
            "corrupt, download it again"
        )


def _extract_with_py7zr(archive: Path, dest: Path) -> None:
    import py7zr

    try:
        with py7zr.SevenZipFile(archive, "r") as z:
            z.extractall(path=dest)
    except Exception as exc:  # py7zr raises many types (Bad7zFile, EOFError, CrcError, lzma...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{archive}: cannot extract it ({reason}); the archive is truncated or corrupt, "
            "download it again"
        ) from None


def extract_archive(archive: Path, dest: Path, *, use_binary: bool | None = None) -> Path:
    """Extract a .7z into `dest` once; returns `dest`.

    A marker listing every extracted file is written only after a successful extraction, so a
    second call returns at once and an interrupted or damaged extraction is redone from scratch.
    `use_binary=None` uses the `7z` program when installed (multi-threaded, much faster on the
    3 GB train archive) and py7zr otherwise.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise UserError(f"{archive}: archive not found; check the path")
    if is_extracted(archive, dest):
        return dest
    if dest.exists() and any(dest.iterdir()):
        if not ((dest / EXTRACTING_MARKER).exists() or (dest / EXTRACTED_MARKER).exists()):
            raise UserError(
                f"{dest}: folder exists and is not an extraction of {archive.name}; "
                "choose an empty or new folder"
            )
        warnings.warn(
            f"{dest}: incomplete extraction of {archive.name}, extracting again", stacklevel=2
        )
        shutil.rmtree(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / EXTRACTING_MARKER).write_text(archive.name)
    except OSError as exc:
        raise UserError(
            f"{dest}: cannot write there ({exc.strerror}); choose a writable work dir"
        ) from None
    binary = shutil.which("7z") or shutil.which("7za") or shutil.which("7zz")
    if use_binary is None:
        use_binary = binary is not None
    if use_binary and binary is None:
        raise UserError("7z program not found; install p7zip-full or use py7zr (use_binary=False)")
    try:
        if use_binary:
            _extract_with_7z_binary(binary, archive, dest)
        else:
            _extract_with_py7zr(archive, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    files = _extracted_files(dest)
    if not files:
        raise UserError(f"{archive}: the archive is empty; download it again")
    record = {**_archive_identity(archive), "files": files}
    (dest / EXTRACTED_MARKER).write_text(json.dumps(record))
    return dest


def find_kaggle_items(root: Path, max_depth: int = 3) -> dict[str, Path]:
    """Map 'train', 'y_train', ... to an archive `<name>.7z` or a folder `<name>/` below `root`.

    Kaggle mounts a dataset under /kaggle/input/<slug>/, sometimes one folder deeper; an archive
    wins over a folder of the same name (its extraction is checked, a folder's is not).
    """
    wanted = {name for pair in KAGGLE_SPLITS.values() for name in pair}
    found: dict[str, Path] = {}
    level = [root]
    for _ in range(max_depth + 1):
        next_level = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                if is_hidden_entry(entry.name):
                    continue
                if entry.is_file() and entry.suffix == ".7z" and entry.stem in wanted:
                    found.setdefault(entry.stem, entry)
                elif entry.is_dir() and entry.name in wanted:
                    found.setdefault(f"{entry.name}/", entry)
                elif entry.is_dir():
                    next_level.append(entry)
        level = next_level
    items = {}
    for name in wanted:
        if name in found:
            items[name] = found[name]
        elif f"{name}/" in found:
            items[name] = found[f"{name}/"]
    return items


@dataclass
class KaggleData:
    """Pairs of the Kaggle dataset after extraction."""

    train: list[AudioPair]
    test: list[AudioPair]


def prepare_kaggle_data(root: Path, work_dir: Path, *, need_train: bool = True) -> KaggleData:
    """Extract (once) and pair the Kaggle archives found under `root`, or use extracted folders.

    Archives are extracted into `work_dir/<name>/` (the input mount is read-only on Kaggle).
    """
    root, work_dir = Path(root), Path(work_dir)
    if not root.is_dir():
        raise UserError(f"{root}: data folder not found; attach the dataset or check the path")
    items = find_kaggle_items(root)
    splits: dict[str, list[AudioPair]] = {"train": [], "test": []}
    for split, (noisy_name, clean_name) in KAGGLE_SPLITS.items():
        missing = [n for n in (noisy_name, clean_name) if n not in items]
        if missing:
            if split == "train" and not need_train:
                continue
            raise UserError(
                f"{root}: {', '.join(m + '.7z' for m in missing)} not found (nor an extracted "
                f"folder of that name); expected train.7z, y_train.7z, test.7z, y_test.7z"
            )
        dirs = []
        for name in (noisy_name, clean_name):
            item = items[name]
            dirs.append(extract_archive(item, work_dir / name) if item.is_file() else item)
        splits[split] = discover_pairs(dirs[0], dirs[1])
    return KaggleData(train=splits["train"], test=splits["test"])

"""A real speech + noise corpus on disk (`speech/`, `noise/`, `MANIFEST.csv`): who speaks in
each file, which licences forbid shipping, and leak-free train / validation / test splits.

Models are judged on unseen speakers and noises, so the split is by SPEAKER for speech and by
recording for noise, decided by a hash of the speaker or file name: the same on every machine
(never Python's salted `hash()`).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.audio import list_audio
from common.errors import UserError

SPLIT_NAMES = ("train", "val", "test")
# Files whose licence forbids training a model that ships (see ../shared/data/README.md).
NONCOMMERCIAL_LICENSE = re.compile(r"BY-NC|non-?commercial", re.IGNORECASE)
NONCOMMERCIAL_PREFIXES = (
    "noise/esc50/",  # ESC-50: CC BY-NC 3.0
    "pairs/vbd_train_p287/",  # the p287 pairs' repository: CC BY-NC 4.0
    "noise/vbd_train_residual/",  # derived from those p287 pairs (noisy - clean)
    "speech/vcc2016/",  # VCC 2016: treat as non-commercial (README)
)
# Speaker from the file name, in the MANIFEST's spelling, where the corpus convention shows it.
SPEAKER_PATTERNS = (
    (re.compile(r"^(\d+)-\d+-\d+$"), "libri{}"),  # LibriSpeech: speaker-chapter-utterance
    (re.compile(r"^(p\d{3})_\d+$"), "{}"),  # VCTK / VoiceBank
    (re.compile(r"^cmu_arctic_us_([a-z]+)_[ab]\d+$"), "arctic_{}"),
    (re.compile(r"^([a-z]+)_arctic_[ab]\d+$"), "arctic_{}"),
    (re.compile(r"^([ST][FM]\d)_\d+$"), "vcc2016_{}"),
    (re.compile(r"^LJ\d{3}-\d{4}$"), "ljspeech"),
)


@dataclass
class CorpusSplit:
    """The speech and noise files of one split."""

    speech: list[Path] = field(default_factory=list)
    noise: list[Path] = field(default_factory=list)


def read_manifest(data_root: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.csv rows by relative path ({} when the file is absent)."""
    path = Path(data_root) / "MANIFEST.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f) if row.get("path")}


def speaker_of(rel_path: str, manifest_row: dict[str, str] | None = None) -> str:
    """Speaker id of a speech file: MANIFEST's `speaker ...` note, else the corpus naming
    convention, else its folder (files of one folder are then kept together, the safe side)."""
    if manifest_row:
        if manifest_row.get("speaker"):
            return manifest_row["speaker"]
        found = re.search(r"\bspeaker (\S+)", manifest_row.get("license_note", ""))
        if found:
            return found.group(1)
    stem = Path(rel_path).stem
    for pattern, template in SPEAKER_PATTERNS:
        match = pattern.match(stem)
        if match:
            return template.format(*match.groups())
    prefix = re.match(r"^(spk\d+)_", stem)
    parent = Path(rel_path).parent.as_posix()
    return f"{parent}/{prefix.group(1)}" if prefix else parent


def is_noncommercial(rel_path: str, manifest_row: dict[str, str] | None = None) -> bool:
    """True for files that must not train a model that ships (ESC-50, p287, vcc2016)."""
    if rel_path.startswith(NONCOMMERCIAL_PREFIXES):
        return True
    return bool(manifest_row and NONCOMMERCIAL_LICENSE.search(manifest_row.get("license_note", "")))


def stable_rank(key: str, seed: int) -> str:
    """A machine-independent order of `key`s for one seed (a hash, not Python's salted one)."""
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def assign_splits(
    groups: dict[str, list[Path]], seed: int = 0, fractions: tuple[float, float] = (0.1, 0.1)
) -> dict[str, list[Path]]:
    """Whole groups to "train" / "val" / "test": groups ordered by a hash of (seed, name), the
    first `fractions[1]` of them to test, the next `fractions[0]` to val (at least one group
    each when there are three or more), the rest to train."""
    ordered = sorted(groups, key=lambda g: stable_rank(g, seed))
    n = len(ordered)
    n_val, n_test = (int(round(n * f)) for f in fractions)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    out: dict[str, list[Path]] = {name: [] for name in SPLIT_NAMES}
    for i, group in enumerate(ordered):
        split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        out[split].extend(groups[group])
    return {k: sorted(v) for k, v in out.items()}


def real_corpus_splits(
    data_root: Path, seed: int = 0, exclude_noncommercial: bool = False
) -> dict[str, CorpusSplit]:
    """Speech (by speaker) and noise (by recording) of `data_root`/speech and /noise, split
    80/10/10 into "train", "val", "test" with no speaker or recording in two splits."""
    data_root = Path(data_root)
    manifest = read_manifest(data_root)
    groups: dict[str, dict[str, list[Path]]] = {"speech": {}, "noise": {}}
    for kind in groups:
        folder = data_root / kind
        if not folder.is_dir():
            raise UserError(f"{folder}: folder not found; the data root needs speech/ and noise/")
        files = list_audio(folder)
        if not files:
            raise UserError(f"{folder}: no .wav/.flac files; check the data root")
        for path in files:
            rel = path.relative_to(data_root).as_posix()
            row = manifest.get(rel)
            if exclude_noncommercial and is_noncommercial(rel, row):
                continue
            # Noise: each file is its own recording.
            key = speaker_of(rel, row) if kind == "speech" else rel
            groups[kind].setdefault(key, []).append(path)
    speech = assign_splits(groups["speech"], seed)
    noise = assign_splits(groups["noise"], seed)
    for split in SPLIT_NAMES:
        if not speech[split] or not noise[split]:
            raise UserError(
                f"{data_root}: too few speakers or noise recordings to fill the {split} split; "
                "add data (at least 3 speakers and 3 noise files)"
            )
    return {s: CorpusSplit(speech=speech[s], noise=noise[s]) for s in SPLIT_NAMES}

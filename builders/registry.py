"""The run registry: `results/registry.json`, one record per pushed Kaggle version.

It also keeps one record per dataset version `make upload-data` created (`datasets`: ref,
version, the folder, file counts and a digest of the files), written only once there is one.

Push adds a record (kernel ref, version, time, git commit, config); status/wait/pull update it
(state, failure message, pulled folder and the sha256 of every pulled file). The leaderboard is
built from this file plus the pulled `summary.json`s only. Writes are atomic (temp file + rename)
so an interrupted command never leaves half a registry.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.atomic import atomic_write
from common.errors import UserError

REGISTRY_NAME = "registry.json"
REGISTRY_FORMAT = 1


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class RunRecord:
    """One pushed version of one notebook."""

    name: str
    kernel: str
    version: int | None
    pushed_at: str
    git_commit: str
    url: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    resume_from: int | None = None
    version_inferred: bool = False
    status: str | None = None
    failure_message: str | None = None
    status_at: str | None = None
    # Kaggle showed this version QUEUED or RUNNING: a later finished state is its own, not the
    # previous session's (an unlabelled status can lag behind a push).
    seen_active: bool = False
    pulled_at: str | None = None
    pulled_dir: str | None = None  # relative to the results folder, e.g. "dpt/v3"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {sha256, bytes}

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version if self.version is not None else '?'}"

    @property
    def version_dir_name(self) -> str:
        if self.version is not None:
            return f"v{self.version}"
        # A version pushed from elsewhere (Kaggle UI, another clone) whose number is unknown.
        return "v0-unknown-" + self.pushed_at.replace(":", "").replace("+0000", "")[:17]


@dataclass
class DatasetRecord:
    """One dataset version uploaded by `make upload-data`."""

    ref: str  # owner/slug
    version: int | None  # None until Kaggle has reported it
    uploaded_at: str
    source: str  # the folder that was uploaded (never written to)
    files: int  # audio files uploaded (plus MANIFEST.csv)
    bytes: int
    digest: str  # sha256 over every uploaded file's path and sha256, and the staged manifest
    speech_files: int = 0
    noise_files: int = 0
    noncommercial_left_out: int = 0
    include_noncommercial: bool = False
    created: bool = False  # a new dataset rather than a new version
    url: str | None = None
    status: str | None = None
    status_at: str | None = None


@dataclass
class Registry:
    path: Path
    runs: list[RunRecord] = field(default_factory=list)
    datasets: list[DatasetRecord] = field(default_factory=list)

    def add_dataset(self, record: DatasetRecord) -> DatasetRecord:
        self.datasets.append(record)
        return record

    def latest_dataset(self, ref: str) -> DatasetRecord | None:
        mine = [d for d in self.datasets if d.ref == ref]
        return mine[-1] if mine else None

    def latest(self, name: str) -> RunRecord | None:
        mine = [r for r in self.runs if r.name == name]
        return mine[-1] if mine else None

    def find(self, name: str, version: int | None) -> RunRecord | None:
        for run in reversed(self.runs):
            if run.name == name and run.version == version:
                return run
        return None

    def before(self, run: RunRecord) -> RunRecord | None:
        """The version of the same kernel recorded just before `run`."""
        earlier = [r for r in self.runs[: self.runs.index(run)] if r.kernel == run.kernel]
        return earlier[-1] if earlier else None

    def add(self, run: RunRecord) -> RunRecord:
        self.runs.append(run)
        return run

    def save(self) -> Path:
        payload: dict[str, Any] = {
            "format": REGISTRY_FORMAT,
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }
        if self.datasets:
            payload["datasets"] = [dataclasses.asdict(d) for d in self.datasets]
        with atomic_write(self.path, encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=False)
            f.write("\n")
        return self.path


def path_depth(name: str) -> tuple[int, str]:
    return name.count("/"), name


def find_summary(files: dict[str, Any] | list[str]) -> str | None:
    """The pulled summary.json: top level first, else the shallowest one (e.g. outputs/)."""
    names = sorted((f for f in files if f.rsplit("/", 1)[-1] == "summary.json"), key=path_depth)
    return names[0] if names else None


def load_registry(results_dir: Path) -> Registry:
    """The registry in `results_dir` (an empty one when the file does not exist yet)."""
    path = Path(results_dir) / REGISTRY_NAME
    if not path.exists():
        return Registry(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(RunRecord)}
        runs = [RunRecord(**{k: v for k, v in r.items() if k in known}) for r in data["runs"]]
        known = {f.name for f in dataclasses.fields(DatasetRecord)}
        datasets = [
            DatasetRecord(**{k: v for k, v in d.items() if k in known})
            for d in data.get("datasets", [])
        ]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path}: not a valid run registry ({exc}); restore it from git (git checkout -- {path})"
        ) from exc
    return Registry(path, runs, datasets)

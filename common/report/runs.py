"""The runs a report compares: pulled Kaggle versions and local run folders, read and checked.

Runs are the pulled Kaggle versions recorded in `results/registry.json` and local run folders
(the CLI's `python -m common evaluate --ckpt CKPT --out runs/NAME`, a training notebook's
outputs). Each is read from its files (`summary.json`, the per-file scores `eval_per_file.csv`,
`history.json`, listening examples). A run whose files are missing, unreadable, inconsistent or
changed after the pull is kept with the reason in `problem` and left out of the comparisons,
never silently dropped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.examples import read_examples
from common.metric_names import METRIC_NAMES, metric_label
from common.provenance import sha256_file
from common.stats import Interval, bootstrap_ci

REGISTRY_FILE = "registry.json"
SUMMARY_FILE = "summary.json"
PER_FILE_CSV = "eval_per_file.csv"
HISTORY_FILE = "history.json"
KAGGLE_CODE_URL = "https://www.kaggle.com/code/"
GROUPS = ("noisy", "enhanced", "delta")
# A summary mean and the mean of its own per-file CSV agree to rounding, or a number was edited.
MEAN_TOLERANCE = 1e-6


@dataclass
class Run:
    """One run as the report sees it; `problem` non-empty: listed, left out of comparisons."""

    label: str
    origin: str  # "kaggle" (pulled) or "local"
    folder: Path | None
    when: str = ""  # ISO time: pushed (Kaggle) or evaluated (local)
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    examples: dict[str, dict[str, Path]] = field(default_factory=dict)
    kernel: str | None = None
    version: int | None = None
    status: str | None = None
    git_commit: str | None = None
    pulled_at: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 (as pulled or as found)
    changed: list[str] = field(default_factory=list)  # pulled files edited since the pull
    missing: list[str] = field(default_factory=list)  # pulled files absent here
    problem: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problem

    def values(self, group: str, metric: str) -> dict[str, Any]:
        return {str(r["file"]): r.get(f"{group}_{metric}") for r in self.rows}

    def interval(self, group: str, metric: str) -> Interval | None:
        return bootstrap_ci(list(self.values(group, metric).values()))

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.summary.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def steps(self) -> int | None:
        steps = self.summary.get("steps")
        if isinstance(steps, int):
            return steps
        with_step = [h["step"] for h in self.history if isinstance(h.get("step"), int)]
        return with_step[-1] if with_step else None


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """eval_per_file.csv with metric cells as floats (None for a failed file)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "file" not in reader.fieldnames:
            raise ValueError("no `file` column")
        rows = []
        for line, raw in enumerate(reader, 2):
            row: dict[str, Any] = {"file": raw["file"]}
            for key, cell in raw.items():
                if key and key.split("_", 1)[0] in GROUPS:
                    try:
                        row[key] = float(cell) if cell not in ("", None) else None
                    except ValueError:
                        raise ValueError(f"line {line}: {key}={cell!r} is not a number") from None
                elif key and key != "file":
                    row[key] = cell
            rows.append(row)
    if not rows:
        raise ValueError("no rows")
    return rows


def _read_history(folder: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    path = folder / HISTORY_FILE
    data: Any = summary.get("history")
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("history")
    return [h for h in data if isinstance(h, dict)] if isinstance(data, list) else []


def _check_means(run: Run) -> str:
    """A problem when summary.json's means are not those of the run's own per-file CSV."""
    metrics = run.summary.get("metrics")
    if not isinstance(metrics, dict):
        return ""
    for group in ("noisy", "enhanced"):
        for m in METRIC_NAMES:
            stated = ((metrics.get(group) or {}).get(m) or {}).get("mean")
            iv = run.interval(group, m)
            if isinstance(stated, (int, float)) and iv is not None:
                if abs(stated - iv.mean) > MEAN_TOLERANCE * max(1.0, abs(iv.mean)):
                    return (
                        f"summary.json says {group} {metric_label(m)} {stated:.4f} but "
                        f"eval_per_file.csv averages {iv.mean:.4f}"
                    )
    return ""


def _load_contents(run: Run, folder: Path) -> None:
    """Summary, per-file rows, history and examples of a run folder; sets `problem` on failure."""
    summary_path, csv_path = folder / SUMMARY_FILE, folder / PER_FILE_CSV
    if summary_path.is_file():
        try:
            run.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            run.problem = f"summary.json unreadable ({exc})"
            return
    if not csv_path.is_file():
        run.problem = "no eval_per_file.csv (per-file scores), so no intervals or paired comparison"
        return
    try:
        run.rows = _read_rows(csv_path)
    except (ValueError, UnicodeDecodeError, csv.Error) as exc:
        run.problem = f"eval_per_file.csv unreadable ({exc})"
        return
    try:
        run.history = _read_history(folder, run.summary)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        run.notes.append(f"history.json unreadable ({exc}): no training curves")
    try:
        run.examples = read_examples(folder)
    except ValueError as exc:
        run.notes.append(f"{exc}: no listening examples")
    run.problem = _check_means(run)
    if not run.git_commit:
        build = run.summary.get("build") if isinstance(run.summary.get("build"), dict) else {}
        run.git_commit = run.summary.get("git_commit") or build.get("git_commit")


def _run_root(folder: Path, names: Iterable[str]) -> Path:
    """Where a pulled run's summary.json is: top level, else the shallowest (e.g. outputs/)."""
    found = sorted(
        (n for n in names if n.rsplit("/", 1)[-1] == SUMMARY_FILE), key=lambda n: n.count("/")
    )
    return (folder / found[0]).parent if found else folder


def load_pulled_runs(results_dir: str | Path) -> list[Run]:
    """One Run per version recorded in results/registry.json (unpulled ones too, with why)."""
    results_dir = Path(results_dir)
    path = results_dir / REGISTRY_FILE
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["runs"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid run registry ({exc}); restore it from git") from None
    runs = []
    for rec in records:
        version = rec.get("version")
        run = Run(
            label=f"{rec.get('name')} v{version if version is not None else '?'}",
            origin="kaggle",
            folder=None,
            when=str(rec.get("pushed_at") or ""),
            kernel=rec.get("kernel"),
            version=version,
            status=rec.get("status"),
            git_commit=rec.get("git_commit") if rec.get("git_commit") != "unknown" else None,
            pulled_at=rec.get("pulled_at"),
        )
        runs.append(run)
        if not rec.get("pulled_dir"):
            run.problem = f"not pulled ({run.status or 'status unknown'})"
            if rec.get("failure_message"):
                run.problem += f": {rec['failure_message']}"
            continue
        folder = results_dir / rec["pulled_dir"]
        if not folder.is_dir():
            run.problem = f"pulled folder {rec['pulled_dir']} is not here"
            continue
        recorded = {k: v.get("sha256", "") for k, v in (rec.get("files") or {}).items()}
        run.files = recorded
        for name, sha in recorded.items():
            p = folder / name
            if not p.is_file():
                run.missing.append(name)
            elif sha256_file(p) != sha:
                run.changed.append(name)
        root = _run_root(folder, recorded)
        run.folder = root
        prefix = root.relative_to(folder).as_posix()
        own = {f"{prefix}/{n}" if prefix != "." else n for n in (SUMMARY_FILE, PER_FILE_CSV)}
        edited = sorted(own & set(run.changed))
        if edited:
            run.problem = f"{', '.join(edited)} changed after the pull"
            continue
        _load_contents(run, root)
        if run.problem.startswith("no eval_per_file.csv") and any(
            n.endswith(PER_FILE_CSV) for n in run.missing
        ):
            run.problem = "eval_per_file.csv was pulled elsewhere and is not here"
    return runs


def load_local_run(folder: str | Path) -> Run:
    """A run folder on this machine (the CLI's or a notebook's outputs)."""
    folder = Path(folder)
    run = Run(label=folder.name, origin="local", folder=folder.resolve())
    if not folder.is_dir():
        run.problem = "folder not found"
        return run
    csv_path = folder / PER_FILE_CSV
    stamp = csv_path if csv_path.is_file() else folder
    run.when = datetime.fromtimestamp(stamp.stat().st_mtime, UTC).isoformat(timespec="seconds")
    _load_contents(run, folder)
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".json", ".csv", ".pt") and p.stat().st_size < 1 << 28:
            run.files[p.relative_to(folder).as_posix()] = sha256_file(p)
    return run


def load_runs(results_dir: str | Path | None, run_dirs: Sequence[str | Path] = ()) -> list[Run]:
    """Pulled runs, then local folders; labels made unique."""
    runs = load_pulled_runs(results_dir) if results_dir else []
    runs += [load_local_run(d) for d in run_dirs]
    seen: dict[str, int] = {}
    for run in runs:
        n = seen.get(run.label, 0)
        seen[run.label] = n + 1
        if n:
            parent = run.folder.parent.name if run.folder else str(n + 1)
            run.label = f"{run.label} ({parent})"
    return runs

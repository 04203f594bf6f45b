"""The reviewers' comparison of runs (`make report` -> results/report.html, notebooks_src/report.py).

Runs are the pulled Kaggle versions recorded in `results/registry.json` and local run folders
(the CLI's `python -m common evaluate --ckpt CKPT --out runs/NAME`, a training notebook's
outputs). Every number is computed here from the per-file scores a run wrote
(`eval_per_file.csv`): means with 95% bootstrap intervals, paired differences over the same
files, distributions. A run whose files are missing, unreadable, inconsistent or changed after
the pull is listed with the reason and left out of the comparisons, never silently dropped.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.examples import read_examples
from common.metric_names import METRIC_NAMES, metric_label
from common.provenance import sha256_file
from common.stats import (
    CI_LEVEL,
    Interval,
    PairedDifference,
    bootstrap_ci,
    format_interval,
    metric_digits,
    paired_difference,
)

REGISTRY_FILE = "registry.json"
SUMMARY_FILE = "summary.json"
PER_FILE_CSV = "eval_per_file.csv"
HISTORY_FILE = "history.json"
KAGGLE_CODE_URL = "https://www.kaggle.com/code/"
GROUPS = ("noisy", "enhanced", "delta")
# A summary mean and the mean of its own per-file CSV agree to rounding, or a number was edited.
MEAN_TOLERANCE = 1e-6


# ------------------------------------------------------------------------------------ runs


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


# ---------------------------------------------------------------------------- comparisons


def metrics_of(runs: Sequence[Run]) -> list[str]:
    """The metrics to show: common.metrics' names first, then any other enhanced_* column."""
    names = list(METRIC_NAMES)
    for run in runs:
        for row in run.rows[:1]:
            for key in row:
                if key.startswith("enhanced_") and key[len("enhanced_") :] not in names:
                    names.append(key[len("enhanced_") :])
    present = [m for m in names if any(any(f"enhanced_{m}" in r for r in x.rows) for x in runs)]
    return present or list(METRIC_NAMES)


def file_set_key(run: Run) -> tuple:
    """Same files *and* the same crops: the noisy input's scores must agree file by file."""
    return tuple(
        sorted(
            (str(r["file"]),)
            + tuple(
                round(r[f"noisy_{m}"], 4) if isinstance(r.get(f"noisy_{m}"), float) else None
                for m in METRIC_NAMES
            )
            for r in run.rows
        )
    )


def file_sets(runs: Sequence[Run]) -> dict[str, str]:
    """{run label: set name} ("A", "B", ...) for the usable runs, in order of first appearance."""
    names: dict[tuple, str] = {}
    out = {}
    for run in runs:
        if run.ok:
            key = file_set_key(run)
            names.setdefault(
                key, chr(ord("A") + len(names)) if len(names) < 26 else str(len(names))
            )
            out[run.label] = names[key]
    return out


def choose_baseline(runs: Sequence[Run], baseline: str = "auto") -> Run | None:
    """The run the others are compared with: the one named, or ("auto") the previous best, the
    best by the first metric's enhanced mean among every usable run except the newest."""
    usable = [r for r in runs if r.ok]
    if baseline and baseline != "auto":
        for run in runs:
            if run.label == baseline:
                if not run.ok:
                    raise UserError(
                        f"baseline {baseline!r} is left out of the report: {run.problem}"
                    )
                return run
        known = ", ".join(r.label for r in usable) or "none"
        raise UserError(f"baseline {baseline!r}: no such run; runs: {known}")
    if len(usable) < 2:
        return None
    newest = max(usable, key=lambda r: r.when)
    earlier = [r for r in usable if r is not newest]
    first = METRIC_NAMES[0]

    def score(r: Run) -> float:
        iv = r.interval("enhanced", first)
        return iv.mean if iv else -math.inf

    return max(earlier, key=score)


@dataclass
class Comparison:
    run: Run
    paired: dict[str, PairedDifference | None]
    note: str = ""  # why there is no pairing


def compare_to_noisy(runs: Sequence[Run], metrics: Sequence[str]) -> list[Comparison]:
    return [
        Comparison(
            r,
            {m: paired_difference(r.values("noisy", m), r.values("enhanced", m)) for m in metrics},
        )
        for r in runs
        if r.ok
    ]


def compare_to_run(base: Run, runs: Sequence[Run], metrics: Sequence[str]) -> list[Comparison]:
    out = []
    base_key, base_files = file_set_key(base), {str(r["file"]) for r in base.rows}
    for run in runs:
        if not run.ok or run is base:
            continue
        if file_set_key(run) != base_key:
            files = {str(r["file"]) for r in run.rows}
            shared = len(files & base_files)
            why = "different files" if files != base_files else "the same files, other crops"
            note = (
                f"not paired: evaluated on {why} ({len(files)} files vs {len(base_files)}, "
                f"{shared} shared)"
            )
            out.append(Comparison(run, {}, note))
            continue
        paired = {
            m: paired_difference(base.values("enhanced", m), run.values("enhanced", m))
            for m in metrics
        }
        out.append(Comparison(run, paired))
    return out


def config_differences(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """(dotted field, value per run) for the configuration fields that differ between runs."""

    def flat(d: Any, prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        if isinstance(d, dict):
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}." if not isinstance(v, dict) else f"{prefix}{k}."))
            return out
        return {prefix.rstrip("."): json.dumps(d)}

    flats = [flat(r.config) for r in runs]
    for f in flats:
        f.pop("description", None)  # the recipe's prose: its name (recipe) already differs
    keys = sorted(set().union(*flats)) if flats else []
    out = []
    for key in keys:
        values = [f.get(key, "–") for f in flats]
        if len(set(values)) > 1:
            out.append((key, values))
    return out


# ----------------------------------------------------------------------------- html tables


def _esc(value: Any) -> str:
    return html.escape("–" if value is None or value == "" else str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; cells are given as HTML (escape text with `_esc`)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="lse-report {cls}" style="border-collapse:collapse;font-size:13px">'
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


STYLE = """<style>
table.lse-report td, table.lse-report th {border:1px solid #ccc;padding:3px 7px;text-align:right;
  white-space:nowrap}
table.lse-report td:first-child, table.lse-report th:first-child {text-align:left}
table.lse-report tr.noisy td {color:#666;font-style:italic}
table.lse-report td.better {background:#e3f4e3} table.lse-report td.worse {background:#f8e1e1}
.lse-left-out {color:#a33}
</style>"""


def _params(value: Any) -> str:
    if not isinstance(value, int):
        return "–"
    return f"{value / 1e6:.2f}M" if value >= 1_000_000 else f"{value:,}"


def _minutes(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "–"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def budget_text(run: Run) -> str:
    """Training budget, time actually trained and the device, as one cell."""
    train = run.config.get("train") if isinstance(run.config.get("train"), dict) else {}
    parts = []
    if isinstance(train.get("max_minutes"), (int, float)):
        parts.append(f"budget {train['max_minutes']:.4g} {train.get('budget_clock', 'wall')} min")
    trained = _minutes(run.summary.get("train_seconds"))
    if trained != "–":
        parts.append(f"trained {trained}")
    device = run.summary.get("device")
    if device:
        nproc = run.summary.get("nproc")
        parts.append(f"{device}" + (f" x{nproc}" if isinstance(nproc, int) and nproc > 1 else ""))
    return "; ".join(parts) or "–"


def leaderboard_html(runs: Sequence[Run], metrics: Sequence[str]) -> str:
    """One row per usable run (best first by the first metric), the noisy input's row per file
    set, then the runs left out with their reason."""
    sets = file_sets(runs)
    usable = [r for r in runs if r.ok]
    first = metrics[0]
    usable.sort(key=lambda r: -(r.interval("enhanced", first) or Interval(-math.inf, 0, 0, 0)).mean)
    head = ["run", "recipe", "model", "params", "G MACs/s", "training", "steps", "files"]
    head += [f"{metric_label(m)}<br><small>mean [{CI_LEVEL:.0%} CI]</small>" for m in metrics]
    rows, noisy_done = [], set()
    for run in usable:
        s = run.summary
        gmacs = s.get("gmacs_per_s")
        mark = " ⚠" if run.changed else ""
        rows.append(
            [
                f"<b>{_esc(run.label)}</b>{mark}",
                _esc(s.get("recipe") or run.config.get("recipe")),
                _esc(s.get("model")),
                _params(s.get("params")),
                f"{gmacs:.3f}" if isinstance(gmacs, (int, float)) else "–",
                _esc(budget_text(run)),
                f"{run.steps:,}" if run.steps is not None else "–",
                f"{len(run.rows)} (set {sets[run.label]})",
                *[_esc(format_interval(run.interval("enhanced", m), m)) for m in metrics],
            ]
        )
    for run in usable:  # the noisy input, once per file set
        if sets[run.label] in noisy_done:
            continue
        noisy_done.add(sets[run.label])
        rows.append(
            [
                "<i>noisy input</i>",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{len(run.rows)} (set {sets[run.label]})",
            ]
            + [_esc(format_interval(run.interval("noisy", m), m)) for m in metrics]
        )
    body = _table(head, rows)
    # Mark the noisy rows (the last len(noisy_done) rows) for the style.
    for _ in range(len(noisy_done)):
        body = body.replace("<tr><td><i>noisy input", '<tr class="noisy"><td><i>noisy input', 1)
    return STYLE + body


def left_out_html(runs: Sequence[Run]) -> str:
    bad = [r for r in runs if not r.ok]
    if not bad:
        return "<p>Every run found is compared below.</p>"
    items = "".join(
        f"<li><b>{_esc(r.label)}</b> ({_esc(r.origin)}"
        + (f", {_esc(r.folder)}" if r.folder else "")
        + f"): {_esc(r.problem)}</li>"
        for r in bad
    )
    return f'<p class="lse-left-out">Left out of the comparisons ({len(bad)}):</p><ul>{items}</ul>'


def _diff_cell(d: PairedDifference | None, metric: str) -> str:
    if d is None:
        return "–"
    iv = d.interval
    cls = "better" if iv.lo > 0 else "worse" if iv.hi < 0 else ""
    text = f"{format_interval(iv, metric, signed=True)}<br><small>{d.improved:.0%} of {d.n} improved</small>"
    return f'<span class="{cls}">{text}</span>' if cls else text


def comparison_html(comparisons: Sequence[Comparison], metrics: Sequence[str]) -> str:
    head = ["run"] + [f"Δ {metric_label(m)}" for m in metrics]
    rows = []
    for c in comparisons:
        if c.note:
            rows.append([_esc(c.run.label), f'<span class="lse-left-out">{_esc(c.note)}</span>'])
            rows[-1] += [""] * (len(metrics) - 1)
        else:
            rows.append([_esc(c.run.label)] + [_diff_cell(c.paired.get(m), m) for m in metrics])
    html_table = _table(head, rows)
    # Colour whole cells where the interval excludes zero.
    html_table = html_table.replace('<td><span class="better">', '<td class="better"><span>')
    html_table = html_table.replace('<td><span class="worse">', '<td class="worse"><span>')
    return STYLE + html_table


def config_html(runs: Sequence[Run]) -> str:
    with_config = [r for r in runs if r.ok and r.config]
    without = [r.label for r in runs if r.ok and not r.config]
    note = f"<p>No stored configuration for: {_esc(', '.join(without))}.</p>" if without else ""
    if len(with_config) < 2:
        return note + "<p>Fewer than two runs with a stored configuration: nothing to compare.</p>"
    diffs = config_differences(with_config)
    if not diffs:
        return note + "<p>The runs' configurations are identical.</p>"

    def cell(value: str) -> str:
        short = value if len(value) <= 40 else value[:39] + "…"
        return f'<span title="{_esc(value)}">{_esc(short)}</span>'

    rows = [[f"<code>{_esc(k)}</code>"] + [cell(v) for v in values] for k, values in diffs]
    return note + STYLE + _table(["field"] + [_esc(r.label) for r in with_config], rows)


def provenance_html(runs: Sequence[Run]) -> str:
    rows = []
    for r in runs:
        if r.kernel:
            url = f"{KAGGLE_CODE_URL}{r.kernel}"
            where = f'<a href="{_esc(url)}">{_esc(r.kernel)}</a> version {_esc(r.version)}'
        else:
            where = f"local folder <code>{_esc(r.folder)}</code>"
        ckpt = (r.summary.get("timings") or {}).get("checkpoint") if r.summary else None
        if ckpt:
            where += f"<br><small>checkpoint {_esc(ckpt)}</small>"
        files = "".join(
            f"<li><code>{_esc(name)}</code> {_esc(sha[:12])}"
            + (" <b>changed after the pull</b>" if name in r.changed else "")
            + (" <i>not here</i>" if name in r.missing else "")
            + "</li>"
            for name, sha in sorted(r.files.items())
        )
        mark = ""
        if r.changed:
            mark = f'<span class="lse-left-out">⚠ {len(r.changed)} file(s) changed after the pull</span>'
        state = r.problem or "ok"
        rows.append(
            [
                f"<b>{_esc(r.label)}</b>",
                where,
                f"<code>{_esc((r.git_commit or '')[:12])}</code>",
                _esc(r.pulled_at or (f"found {r.when}" if r.origin == "local" else "")),
                (
                    mark
                    + f"<details><summary>{len(r.files)} files (sha256)</summary><ul>{files}</ul></details>"
                )
                if r.files
                else mark or "–",
                _esc(state) + "".join(f"<br><small>{_esc(n)}</small>" for n in r.notes),
            ]
        )
    head = ["run", "kernel / folder", "git commit", "pulled", "files", "state"]
    return STYLE + _table(head, rows)


# -------------------------------------------------------------------------------- figures


def _colours(n: int) -> list[Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def plot_curves(runs: Sequence[Run]) -> Any:
    """Loss, validation SI-SDR and learning rate of every run, against steps and against time."""
    import matplotlib.pyplot as plt

    with_history = [r for r in runs if r.ok and r.history]
    panels = [("loss (solid: train, dashed: validation)", ("train_loss", "val_loss")),
              ("validation SI-SDR (dB)", ("val_si_sdr",)), ("learning rate", ("lr",))]  # fmt: skip
    fig, axes = plt.subplots(2, 3, figsize=(14, 7), squeeze=False)
    for run, colour in zip(with_history, _colours(len(with_history))):
        h = run.history
        steps = [e.get("step", i + 1) for i, e in enumerate(h)]
        minutes = [e.get("elapsed_seconds", math.nan) / 60 for e in h]
        for row, xs in enumerate((steps, minutes)):
            for col, (_, keys) in enumerate(panels):
                ax = axes[row][col]
                for key, style in zip(keys, ("-", "--")):
                    ys = [e.get(key, math.nan) for e in h]
                    ys = [y if isinstance(y, (int, float)) else math.nan for y in ys]
                    if any(math.isfinite(y) for y in ys):
                        label = run.label if key != "val_loss" or len(keys) == 1 else None
                        ax.plot(xs, ys, style, color=colour, marker=".", ms=3, label=label)
    for col, (title, _) in enumerate(panels):
        axes[0][col].set_title(title, fontsize=10)
        axes[0][col].set_xlabel("optimizer steps")
        axes[1][col].set_xlabel("training time (min)")
        if col == 2:
            for row in (0, 1):
                axes[row][col].set_yscale("log")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_distributions(runs: Sequence[Run], metrics: Sequence[str]) -> Any:
    """Per metric, a box per run of its per-file enhanced scores, and the noisy input's per set."""
    import matplotlib.pyplot as plt

    usable = [r for r in runs if r.ok]
    sets = file_sets(runs)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(max(3.4, 0.9 * (len(usable) + 2)) * len(metrics) / 1.6, 4.2),
        squeeze=False,
    )  # fmt: skip
    noisy_runs = {sets[r.label]: r for r in reversed(usable)}
    for ax, m in zip(axes[0], metrics):
        data, labels, colours = [], [], []
        for s, r in sorted(noisy_runs.items()):
            data.append([v for v in r.values("noisy", m).values() if isinstance(v, float)])
            labels.append(f"noisy ({s})" if len(noisy_runs) > 1 else "noisy")
            colours.append("lightgrey")
        for r, c in zip(usable, _colours(len(usable))):
            data.append([v for v in r.values("enhanced", m).values() if isinstance(v, float)])
            labels.append(r.label)
            colours.append(c)
        parts = ax.boxplot(data, patch_artist=True, showmeans=True, widths=0.6)
        for patch, colour in zip(parts["boxes"], colours):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.set_xticks(range(1, len(labels) + 1))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
        ax.set_title(metric_label(m), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- listening


def listening_files(runs: Sequence[Run]) -> list[str]:
    """The example files every usable run with examples saved (their order: the fixed choice)."""
    with_examples = [r for r in runs if r.ok and r.examples]
    if not with_examples:
        return []
    common = set(with_examples[0].examples)
    for r in with_examples[1:]:
        common &= set(r.examples)
    return [f for f in with_examples[0].examples if f in common]


def listening_signals(runs: Sequence[Run], name: str) -> dict[str, Path]:
    """{panel label: audio file}: noisy, each run's output, clean, for one example file."""
    with_examples = [r for r in runs if r.ok and name in r.examples]
    first = with_examples[0].examples[name]
    out: dict[str, Path] = {}
    if "noisy" in first:
        out["noisy"] = first["noisy"]
    for r in with_examples:
        if "enhanced" in r.examples[name]:
            out[r.label] = r.examples[name]["enhanced"]
    if "clean" in first:
        out["clean"] = first["clean"]
    return out


def audio_tag(path: Path) -> str:
    """An <audio> element with the file embedded (the page stays one self-contained file)."""
    mime = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg"}.get(
        path.suffix.lower(), "audio/wav"
    )
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<audio controls preload="auto" src="data:{mime};base64,{data}"></audio>'


def listening_scores(runs: Sequence[Run], name: str, metrics: Sequence[str]) -> dict[str, str]:
    """{panel label: this file's scores} for the noisy input and each run's output."""

    def text(row: dict[str, Any], group: str) -> str:
        cells = []
        for m in metrics[:2]:
            value = row.get(f"{group}_{m}")
            if isinstance(value, float):
                cells.append(f"{metric_label(m)} {fmt_number(value, m)}")
        return ", ".join(cells)

    out: dict[str, str] = {}
    for run in runs:
        row = next((r for r in run.rows if r["file"] == name), None)
        if run.ok and row is not None:
            out.setdefault("noisy", text(row, "noisy"))
            out[run.label] = text(row, "enhanced")
    return out


def players_html(signals: dict[str, Path], scores: dict[str, str] | None = None) -> str:
    """One audio player per signal, labelled (with the file's scores when given)."""
    scores = scores or {}
    cells = "".join(
        f'<div style="display:inline-block;margin:4px 10px 4px 0"><div><b>{_esc(label)}</b>'
        + (f" <small>{_esc(scores[label])}</small>" if scores.get(label) else "")
        + f"</div>{audio_tag(path)}</div>"
        for label, path in signals.items()
    )
    return f'<div class="lse-players">{cells}</div>'


def plot_listening(signals: dict[str, Path], title: str) -> Any:
    """Spectrograms of noisy / each run / clean on one colour scale."""
    from common.audio import load_audio
    from common.plots import plot_spectrograms

    return plot_spectrograms({k: load_audio(p) for k, p in signals.items()}, title=title)


def _summary_mean(run: Run, group: str, metric: str) -> float | None:
    value = ((run.summary.get("metrics") or {}).get(group) or {}).get(metric) or {}
    mean = value.get("mean") if isinstance(value, dict) else None
    return float(mean) if isinstance(mean, (int, float)) and math.isfinite(mean) else None


def headline_means(run: Run, metric: str) -> tuple[float | None, float | None, Interval | None]:
    """(noisy mean, enhanced mean, enhanced interval): from the per-file rows when the run has
    them (the report's numbers), else from its summary.json (older runs)."""
    if run.rows:
        noisy, enhanced = run.interval("noisy", metric), run.interval("enhanced", metric)
        return (noisy.mean if noisy else None, enhanced.mean if enhanced else None, enhanced)
    return _summary_mean(run, "noisy", metric), _summary_mean(run, "enhanced", metric), None


def fmt_number(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    d = metric_digits(metric)
    return f"{value:+.{d}f}" if signed else f"{value:.{d}f}"


def run_sort_key(run: Run) -> tuple[int, float]:
    _, enhanced, _ = headline_means(run, METRIC_NAMES[0])
    return (0, -enhanced) if enhanced is not None else (1, 0.0)


def examples_note(runs: Sequence[Run]) -> str:
    missing = [r.label for r in runs if r.ok and not r.examples]
    return (
        f"No listening examples saved by: {', '.join(missing)} (runs from before examples were "
        "saved, or CLI evaluations without --ckpt)."
        if missing
        else ""
    )

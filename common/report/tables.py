"""The report's HTML tables: leaderboard, runs left out, paired comparisons, configuration
differences, provenance. Each returns HTML with the style it needs; cells are escaped text."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from common.metric_names import metric_label
from common.report.compare import Comparison, config_differences, file_sets
from common.report.runs import KAGGLE_CODE_URL, Run
from common.stats import (
    CI_LEVEL,
    Interval,
    PairedDifference,
    format_interval,
    metric_digits,
)


def html_text(value: Any) -> str:
    """`value` as escaped HTML text; a dash for nothing."""
    return html.escape("–" if value is None or value == "" else str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; cells are given as HTML (escape text with `html_text`)."""
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
                f"<b>{html_text(run.label)}</b>{mark}",
                html_text(s.get("recipe") or run.config.get("recipe")),
                html_text(s.get("model")),
                _params(s.get("params")),
                f"{gmacs:.3f}" if isinstance(gmacs, (int, float)) else "–",
                html_text(budget_text(run)),
                f"{run.steps:,}" if run.steps is not None else "–",
                f"{len(run.rows)} (set {sets[run.label]})",
                *[html_text(format_interval(run.interval("enhanced", m), m)) for m in metrics],
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
            + [html_text(format_interval(run.interval("noisy", m), m)) for m in metrics]
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
        f"<li><b>{html_text(r.label)}</b> ({html_text(r.origin)}"
        + (f", {html_text(r.folder)}" if r.folder else "")
        + f"): {html_text(r.problem)}</li>"
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
            rows.append(
                [html_text(c.run.label), f'<span class="lse-left-out">{html_text(c.note)}</span>']
            )
            rows[-1] += [""] * (len(metrics) - 1)
        else:
            rows.append(
                [html_text(c.run.label)] + [_diff_cell(c.paired.get(m), m) for m in metrics]
            )
    html_table = _table(head, rows)
    # Colour whole cells where the interval excludes zero.
    html_table = html_table.replace('<td><span class="better">', '<td class="better"><span>')
    html_table = html_table.replace('<td><span class="worse">', '<td class="worse"><span>')
    return STYLE + html_table


def config_html(runs: Sequence[Run]) -> str:
    with_config = [r for r in runs if r.ok and r.config]
    without = [r.label for r in runs if r.ok and not r.config]
    note = (
        f"<p>No stored configuration for: {html_text(', '.join(without))}.</p>" if without else ""
    )
    if len(with_config) < 2:
        return note + "<p>Fewer than two runs with a stored configuration: nothing to compare.</p>"
    diffs = config_differences(with_config)
    if not diffs:
        return note + "<p>The runs' configurations are identical.</p>"

    def cell(value: str) -> str:
        short = value if len(value) <= 40 else value[:39] + "…"
        return f'<span title="{html_text(value)}">{html_text(short)}</span>'

    rows = [[f"<code>{html_text(k)}</code>"] + [cell(v) for v in values] for k, values in diffs]
    return note + STYLE + _table(["field"] + [html_text(r.label) for r in with_config], rows)


def provenance_html(runs: Sequence[Run]) -> str:
    rows = []
    for r in runs:
        if r.kernel:
            url = f"{KAGGLE_CODE_URL}{r.kernel}"
            where = f'<a href="{html_text(url)}">{html_text(r.kernel)}</a> version {html_text(r.version)}'
        else:
            where = f"local folder <code>{html_text(r.folder)}</code>"
        ckpt = (r.summary.get("timings") or {}).get("checkpoint") if r.summary else None
        if ckpt:
            where += f"<br><small>checkpoint {html_text(ckpt)}</small>"
        files = "".join(
            f"<li><code>{html_text(name)}</code> {html_text(sha[:12])}"
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
                f"<b>{html_text(r.label)}</b>",
                where,
                f"<code>{html_text((r.git_commit or '')[:12])}</code>",
                html_text(r.pulled_at or (f"found {r.when}" if r.origin == "local" else "")),
                (
                    mark
                    + f"<details><summary>{len(r.files)} files (sha256)</summary><ul>{files}</ul></details>"
                )
                if r.files
                else mark or "–",
                html_text(state) + "".join(f"<br><small>{html_text(n)}</small>" for n in r.notes),
            ]
        )
    head = ["run", "kernel / folder", "git commit", "pulled", "files", "state"]
    return STYLE + _table(head, rows)


def fmt_number(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    d = metric_digits(metric)
    return f"{value:+.{d}f}" if signed else f"{value:.{d}f}"

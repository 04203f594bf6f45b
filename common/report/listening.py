"""The report's listening section: the example files every run saved, one embedded player per
signal (noisy input, each run's output, clean reference) with that file's scores."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.metric_names import metric_label
from common.report.runs import Run
from common.report.tables import fmt_number, html_text


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
        f'<div style="display:inline-block;margin:4px 10px 4px 0"><div><b>{html_text(label)}</b>'
        + (f" <small>{html_text(scores[label])}</small>" if scores.get(label) else "")
        + f"</div>{audio_tag(path)}</div>"
        for label, path in signals.items()
    )
    return f'<div class="lse-players">{cells}</div>'


def examples_note(runs: Sequence[Run]) -> str:
    missing = [r.label for r in runs if r.ok and not r.examples]
    return (
        f"No listening examples saved by: {', '.join(missing)} (runs from before examples were "
        "saved, or CLI evaluations without --ckpt)."
        if missing
        else ""
    )

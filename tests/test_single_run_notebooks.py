"""The single-run notebooks as a reviewer reads them (the last `make smoke` output): the model as
a compact table, progress as plain lines (never stderr bars), the headline numbers in the last
cell, and the same listening examples saved by every run. Plus the progress lines themselves.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import run_python

from builders.build import REPO
from builders.smoke import SMOKE_DIR, smoke_names
from common.examples import choose_examples
from common.metric_names import METRIC_NAMES
from common.recipes import recipe_names

TRAINING = [n for n in smoke_names(REPO) if n in recipe_names()]
EVALUATING = [*TRAINING, "evaluate"]


def executed(name: str) -> nbformat.NotebookNode:
    path = REPO / SMOKE_DIR / name / f"{name}.ipynb"
    if not (REPO / SMOKE_DIR / name / "summary.json").is_file():
        pytest.skip(f"no finished {path.relative_to(REPO)}: run `make smoke` first")
    return nbformat.read(path, as_version=4)


def stream_text(cell: nbformat.NotebookNode, name: str = "stdout") -> str:
    return "".join(
        o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
        and o.get("name") == name
    )  # fmt: skip


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", smoke_names(REPO))
def test_progress_is_plain_lines_not_stderr_bars(name: str):
    nb = executed(name)
    for cell in code_cells(nb):
        err = stream_text(cell, "stderr")
        assert "\r" not in err and "%|" not in err, f"{name}: a progress bar on stderr: {err[:200]}"
    out = "".join(stream_text(c) for c in code_cells(nb))
    assert "\r" not in out
    if name in EVALUATING:
        assert "evaluate: " in out and "(100%), done in" in out  # the scoring's progress line


@pytest.mark.parametrize("name", TRAINING)
def test_the_model_cell_is_a_table_not_the_module_repr(name: str):
    nb = executed(name)
    (cell,) = [c for c in code_cells(nb) if "show_model(" in c.source]
    text = stream_text(cell)
    assert text.splitlines()[1].split()[:4] == ["block", "type", "output", "shape"]
    assert "multiply-accumulates per second of audio" in text
    assert "Sequential(" not in text and len(text.splitlines()) < 30
    summary = json.loads((REPO / SMOKE_DIR / name / "summary.json").read_text())
    assert f"{summary['params']:,}" in text and summary["gmacs_per_s"] > 0


@pytest.mark.parametrize("name", EVALUATING)
def test_the_last_cell_prints_the_headline_numbers(name: str):
    nb = executed(name)
    text = stream_text(code_cells(nb)[-1])
    assert "difference (paired)" in text
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.strip()}
    summary = json.loads((REPO / SMOKE_DIR / name / "summary.json").read_text())
    for metric in METRIC_NAMES:
        stat = summary["metrics"]["enhanced"][metric]
        digits = 2 if metric == "si_sdr" else 3
        assert f"{stat['mean']:.{digits}f} [" in rows[metric]


def test_every_run_saves_the_same_listening_examples():
    chosen = {}
    for name in EVALUATING:
        index = REPO / SMOKE_DIR / name / "examples" / "index.json"
        if not index.is_file():
            pytest.skip(f"no {index.relative_to(REPO)}: run `make smoke` first")
        files = json.loads(index.read_text())["files"]
        chosen[name] = list(files)
        for signals in files.values():
            assert set(signals) == {"noisy", "enhanced", "clean"}
    first = next(iter(chosen.values()))
    assert first == choose_examples(first)
    assert all(c == first for c in chosen.values()), chosen


def test_progress_outside_a_terminal_is_a_few_plain_lines():
    code = (
        "from common.progress import progress\n"
        "bar = progress(total=4, desc='epoch 1/2', unit='step', every_s=0)\n"
        "for _ in range(4):\n"
        "    bar.update(1)\n"
        "    bar.set_postfix(loss='0.5')\n"
        "bar.close()\n"
        "print(sum(progress(range(3), desc='files')))\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("epoch 1/2: 1/4 step (25%), 0:00 elapsed")
    assert lines[4].startswith("epoch 1/2: 4/4 step (100%), done in 0:00, loss=0.5")
    assert lines[5].startswith("files: 3/3 it (100%), done in") and lines[6] == "3"
    assert "\r" not in proc.stdout

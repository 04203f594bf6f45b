"""Every figure a notebook makes is shown in the executed notebook and in its HTML render.

The smoke run checks each notebook as it goes (`check_figures`); these tests prove that check
and the smoke kernel's backend, and read the last `make smoke` output when there is one.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import code_notebook

from builders.build import REPO, source_path
from builders.smoke import (
    SMOKE_DIR,
    check_figures,
    execute,
    isolated_kernel,
    render_html,
    shown_figures,
    smoke_names,
)

# A call in a notebook source -> the figure file (out_dir/NAME*.png) that it saves.
FIGURE_MAKERS = {
    "plot_training_curves": "training_curves",
    "evaluate_enhanced": "metrics",  # the bar chart and metric_distributions.png
    "show_examples": "spectrogram_",
    "show_attention": "attention_",
    "plot_vad": "vad_timeline",
}

FIGURES_SOURCE = """\
from pathlib import Path

import matplotlib.pyplot as plt

fig, ax = plt.subplots()
ax.plot([0, 1], [1, 0])
fig.savefig(Path(OUT) / "line.png")
plt.show()
plt.subplots()[1].imshow([[0, 1], [1, 0]])  # left open: the backend shows it at the cell's end
"""


def test_smoke_kernel_shows_figures_in_the_notebook_and_its_html(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    notebook = code_notebook(tmp_path / "figures.ipynb", f"OUT = {str(out)!r}", FIGURES_SOURCE)
    executed = tmp_path / "figures.out.ipynb"
    with isolated_kernel(tmp_path) as kernel:
        execute(notebook, executed, {}, kernel, tmp_path, timeout_s=120)
    html = render_html(executed)
    assert shown_figures(executed) == 2
    assert html.read_text().count("<img") == 2
    assert check_figures(executed, html, out) == []


def test_figures_saved_but_not_shown_are_reported(tmp_path: Path) -> None:
    """What the smoke printed when its kernel drew with Agg: figures on disk, none on the page."""
    for name in ("training_curves.png", "metrics.png"):
        (tmp_path / name).write_bytes(b"png")
    executed = code_notebook(tmp_path / "nb.ipynb", "plt.show()")
    html = tmp_path / "nb.html"
    html.write_text("<html><body>no figures</body></html>")
    (problem,) = check_figures(executed, html, tmp_path)
    assert "saves 2 figures (metrics.png, training_curves.png...) but shows 0" in problem


def test_html_missing_figures_is_reported(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plt.show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    nb.cells = [cell]
    executed = tmp_path / "nb.ipynb"
    nbformat.write(nb, executed)
    html = tmp_path / "nb.html"
    html.write_text("<html></html>")
    assert check_figures(executed, html, tmp_path) == [
        f"{html}: shows 0 of the notebook's 1 figures"
    ]


def has_attention(recipe: str) -> bool:
    from torch import nn

    from common.models import build_model
    from common.recipes import load_recipe
    from common.run import model_settings

    cfg = load_recipe(recipe)
    model = build_model(cfg.model.name, **model_settings(cfg))
    return any(isinstance(m, nn.MultiheadAttention) for m in model.modules())


def expected_figures(name: str) -> set[str]:
    """The figure files the notebook's source makes, from the plotting calls it contains (a
    recipe's notebook shows attention maps only when its model has attention)."""
    from common.recipes import recipe_names

    text = source_path(name, REPO).read_text()
    found = {prefix for call, prefix in FIGURE_MAKERS.items() if re.search(rf"\b{call}\(", text)}
    if name in recipe_names() and not has_attention(name):
        found.discard("attention_")
    return found


@pytest.mark.parametrize("name", smoke_names(REPO))
def test_smoke_output_shows_every_figure(name: str) -> None:
    out = REPO / SMOKE_DIR / name
    executed, html = out / f"{name}.ipynb", out / f"{name}.html"
    if not (executed.is_file() and html.is_file()):
        pytest.skip(f"no {executed.relative_to(REPO)}: run `make smoke` first")
    assert (out / "summary.json").is_file(), f"the last `make smoke` of {name} did not finish"
    expected = expected_figures(name)
    assert expected, f"notebooks_src/{name}.py makes no figure this test knows"
    saved = sorted(p.name for p in out.glob("*.png"))
    missing = {prefix for prefix in expected if not any(s.startswith(prefix) for s in saved)}
    assert not missing, f"{name}: no figure saved for {sorted(missing)} (saved: {saved})"
    shown = shown_figures(executed)
    in_html = html.read_text(encoding="utf-8").count("<img")
    assert shown >= len(saved), f"{executed}: {len(saved)} figures saved, {shown} shown"
    assert in_html >= shown, f"{html}: {in_html} <img> for {shown} figures"

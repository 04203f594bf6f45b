"""A built notebook runs with papermill where `common` cannot be imported; the smoke checks hold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest
from conftest import code_notebook

from builders.build import build_notebook
from builders.smoke import (
    SmokeConfig,
    check_isolation,
    check_summary,
    execute,
    isolated_kernel,
    render_html,
    smoke_parameters,
)
from common.errors import UserError
from common.metric_names import ALL_METRICS, METRIC_NAMES


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kernel")
    with isolated_kernel(tmp) as name:
        yield name, tmp


def test_kernel_cannot_import_common_and_errors_name_the_cell(kernel, tmp_path: Path) -> None:
    name, _ = kernel
    notebook = code_notebook(
        tmp_path / "probe.ipynb",
        "try:\n    import common\n    print('IMPORTABLE', common.__file__)\n"
        "except ModuleNotFoundError as exc:\n    print('BLOCKED', exc)",
        "raise ValueError('boom from the second cell')",
    )
    executed = tmp_path / "out.ipynb"
    with pytest.raises(
        UserError, match=r"out.ipynb: cell In \[2\] `raise ValueError.*` failed: ValueError: boom"
    ) as info:
        execute(notebook, executed, {}, name, tmp_path, timeout_s=60)
    assert "\n" not in str(info.value)
    cells = nbformat.read(executed, as_version=4).cells
    output = next(c for c in cells if c.source.startswith("try:")).outputs[0]["text"]
    assert output.startswith("BLOCKED No module named 'common'")
    check_isolation(name, tmp_path)  # the runner's own probe agrees


def test_built_example_runs_without_the_repository(kernel, tmp_path: Path) -> None:
    name, _ = kernel
    notebook = build_notebook("_example", out_dir=tmp_path / "built")
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    params = smoke_parameters(
        notebook, SmokeConfig(), tmp_path / "data", cwd / "work", out, tmp_path
    )
    assert params["output_dir"] == str(out) and "eval_seconds" not in params  # only declared ones
    executed = tmp_path / "_example.ipynb"
    execute(notebook, executed, params, name, cwd, timeout_s=120)
    summary = json.loads((out / "summary.json").read_text())
    # The example computes its own PESQ/STOI/ESTOI/SI-SDR only (no DNSMOS: it imports no metrics).
    assert check_summary(summary, METRIC_NAMES) == []
    assert summary["build"]["source"] == "tests/notebooks/_example.py"
    assert len(summary["build"]["sources_sha256"]) == 64
    html = render_html(executed).read_text()
    assert "<html" in html[:500].lower()
    # The library cell ran (its copy of `common`, not the repository's) ...
    cells = nbformat.read(executed, as_version=4).cells
    library = next(c for c in cells if "library" in c.metadata.get("tags", []))
    assert library.outputs[0]["text"].startswith("common: ")
    # ... and the HTML shows its one line of output, not its code.
    assert "common: " in html and "def write_library" not in html and "LIBRARY = " not in html


def metrics_summary() -> dict:
    group = {m: {"mean": 1.0, "std": 0.1, "n": 2} for m in ALL_METRICS}
    return {
        "metrics": {
            "count": 2,
            "noisy": group,
            "enhanced": json.loads(json.dumps(group)),
            "failures": [],
        }
    }


def test_check_summary_accepts_complete_metrics() -> None:
    assert check_summary(metrics_summary()) == []


@pytest.mark.parametrize(
    ("break_it", "problem"),
    [
        (lambda s: s.pop("metrics"), 'no "metrics" dict'),
        (
            lambda s: s["metrics"]["enhanced"]["pesq"].update(mean=math.nan),
            "metrics.enhanced.pesq.mean is nan",
        ),
        (
            lambda s: s["metrics"]["noisy"]["stoi"].update(std=math.inf),
            "metrics.noisy.stoi.std is inf",
        ),
        (lambda s: s["metrics"]["noisy"].pop("estoi"), "metrics.noisy.estoi.mean is missing"),
        (
            lambda s: s["metrics"]["enhanced"].pop("dnsmos_ovrl"),
            "metrics.enhanced.dnsmos_ovrl.mean is missing",
        ),
        (
            lambda s: s["metrics"]["enhanced"]["si_sdr"].update(mean=None),
            "metrics.enhanced.si_sdr.mean is missing",
        ),
        (
            lambda s: s["metrics"]["failures"].append(
                {"file": "a.wav", "signal": "enhanced", "metric": "pesq", "reason": "No utterances"}
            ),
            "1 metric failure(s), first: a.wav enhanced pesq: No utterances",
        ),
        (
            lambda s: s.update(metrics={"count": 0}),
            'no metrics summary with "noisy"/"enhanced" found',
        ),
    ],
)
def test_check_summary_reports_missing_or_non_finite_metrics(break_it, problem: str) -> None:
    summary = metrics_summary()
    break_it(summary)
    assert problem in check_summary(summary)


def test_nested_summaries_are_checked_too() -> None:
    good = metrics_summary()["metrics"]
    bad = json.loads(json.dumps(good))
    bad["enhanced"]["pesq"]["mean"] = math.nan
    problems = check_summary({"metrics": {"crn": good, "dpt": bad}})
    assert problems == ["metrics.dpt.enhanced.pesq.mean is nan"]

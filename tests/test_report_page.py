"""The reviewers' page (`make report`): its numbers against a direct computation on a small case,
unpaired sets said so, broken runs listed with their reason, and the command as typed.

The browser test of the rendered page is tests/e2e/test_report_browser.py.
"""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_python

from common.metric_names import METRIC_NAMES
from common.report.compare import (
    choose_baseline,
    compare_to_noisy,
    compare_to_run,
    config_differences,
)
from common.report.runs import load_local_run, load_runs
from common.report.tables import left_out_html
from common.stats import CI_LEVEL, bootstrap_ci, paired_difference


def write_run(
    folder: Path,
    noisy: dict[str, np.ndarray],
    enhanced: dict[str, np.ndarray],
    names: list[str],
    config: dict | None = None,
    summary_means: bool = True,
) -> Path:
    """A run folder as the notebooks and `evaluate --ckpt` write it: per-file CSV + summary."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, name in enumerate(names):
        row = {"file": name, "seconds": 1.0}
        for m in METRIC_NAMES:
            row[f"noisy_{m}"] = float(noisy[m][i])
            row[f"enhanced_{m}"] = float(enhanced[m][i])
            row[f"delta_{m}"] = float(enhanced[m][i] - noisy[m][i])
        rows.append({**row, "misaligned": "", "failures": ""})
    with open(folder / "eval_per_file.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    metrics = {
        g: {m: {"mean": float(np.mean(v[m])), "n": len(names)} for m in METRIC_NAMES}
        for g, v in (("noisy", noisy), ("enhanced", enhanced))
    }
    summary = {"model": "lite", "params": 1000, "config": config or {}}
    if summary_means:
        summary["metrics"] = {"count": len(names), **metrics, "failures": []}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def scores(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    return {m: rng.normal(2.0 + shift, 0.5, n) for m in METRIC_NAMES}


def exact_bootstrap(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The bootstrap interval by enumerating every resample (n^n of them, all equally likely)."""
    n = len(values)
    means = np.array([values[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


@pytest.fixture
def two_runs(tmp_path: Path):
    rng = np.random.default_rng(7)
    names = [f"f{i}.wav" for i in range(5)]
    noisy = scores(rng, len(names))
    a = {m: v + rng.normal(0.4, 0.3, len(names)) for m, v in noisy.items()}
    b = {m: v + rng.normal(0.2, 0.3, len(names)) for m, v in a.items()}
    run_a = write_run(tmp_path / "a", noisy, a, names, {"train": {"lr": 0.001, "epochs": 5}})
    run_b = write_run(tmp_path / "b", noisy, b, names, {"train": {"lr": 0.002, "epochs": 5}})
    return names, noisy, a, b, run_a, run_b


def test_means_intervals_and_paired_differences_match_a_direct_computation(two_runs):
    names, noisy, a, b, run_a, run_b = two_runs
    ra, rb = load_local_run(run_a), load_local_run(run_b)
    assert ra.ok and rb.ok, (ra.problem, rb.problem)
    for m in METRIC_NAMES:
        iv = ra.interval("enhanced", m)
        assert iv.mean == pytest.approx(np.mean(a[m])) and iv.n == len(names)
        lo, hi = exact_bootstrap(a[m])
        width = hi - lo
        assert iv.lo == pytest.approx(lo, abs=0.1 * width)
        assert iv.hi == pytest.approx(hi, abs=0.1 * width)

        (to_noisy,) = [c for c in compare_to_noisy([ra], [m])]
        diff = a[m] - noisy[m]
        d = to_noisy.paired[m]
        assert d.interval.mean == pytest.approx(diff.mean())
        assert d.improved == pytest.approx(np.mean(diff > 0))

        (vs_a,) = compare_to_run(ra, [ra, rb], [m])
        diff = b[m] - a[m]
        d = vs_a.paired[m]
        assert vs_a.note == "" and d.n == len(names)
        assert d.interval.mean == pytest.approx(diff.mean())
        assert d.improved == pytest.approx(np.mean(diff > 0))
        lo, hi = exact_bootstrap(diff)
        assert d.interval.lo == pytest.approx(lo, abs=0.1 * (hi - lo))
        assert d.interval.hi == pytest.approx(hi, abs=0.1 * (hi - lo))


def test_failed_files_are_left_out_of_the_means_and_the_pairs():
    values = {"x": 1.0, "y": None, "z": 3.0}
    other = {"x": 2.0, "y": 5.0, "z": None}
    assert bootstrap_ci(list(values.values())).n == 2
    d = paired_difference(values, other)
    assert d.n == 1 and d.interval.mean == pytest.approx(other["x"] - values["x"])


def test_runs_on_other_files_or_other_crops_are_not_paired(tmp_path: Path, two_runs):
    names, noisy, a, b, run_a, _ = two_runs
    rng = np.random.default_rng(3)
    other_names = names[:3] + ["g0.wav", "g1.wav"]
    run_c = write_run(tmp_path / "c", noisy, b, other_names)
    recropped = {m: v + 0.5 for m, v in noisy.items()}  # same names, other noisy scores
    run_d = write_run(tmp_path / "d", recropped, scores(rng, len(names)), names)
    runs = load_runs(None, [run_a, run_c, run_d])
    comparisons = {c.run.label: c for c in compare_to_run(runs[0], runs, list(METRIC_NAMES))}
    assert "not paired: evaluated on different files" in comparisons["c"].note
    assert "3 shared" in comparisons["c"].note
    assert "the same files, other crops" in comparisons["d"].note


def test_the_baseline_is_the_previous_best_or_the_one_named(two_runs):
    *_, run_a, run_b = two_runs
    runs = load_runs(None, [run_a, run_b])
    runs[0].when, runs[1].when = "2026-01-01", "2026-02-01"  # b is the newest
    assert choose_baseline(runs).label == "a"
    assert choose_baseline(runs, "b").label == "b"
    with pytest.raises(Exception, match="no such run"):
        choose_baseline(runs, "nosuch")


def test_only_the_configuration_fields_that_differ_are_shown(two_runs):
    *_, run_a, run_b = two_runs
    diffs = dict(config_differences(load_runs(None, [run_a, run_b])))
    assert list(diffs) == ["train.lr"]


def test_broken_runs_are_listed_with_their_reason(tmp_path: Path, two_runs):
    names, noisy, a, *_ = two_runs
    no_csv = tmp_path / "no-csv"
    no_csv.mkdir()
    (no_csv / "summary.json").write_text("{}")
    typed_in = write_run(tmp_path / "typed-in", noisy, a, names)
    summary = json.loads((typed_in / "summary.json").read_text())
    summary["metrics"]["enhanced"]["pesq"]["mean"] += 0.5  # a number typed in by hand
    (typed_in / "summary.json").write_text(json.dumps(summary))
    runs = load_runs(None, [no_csv, typed_in, tmp_path / "absent"])
    assert [r.ok for r in runs] == [False, False, False]
    page = left_out_html(runs)
    assert "no eval_per_file.csv" in page
    assert "summary.json says enhanced PESQ-wb" in page
    assert "folder not found" in page


def make_report(env_results: Path, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", "report", *variables],
        cwd=REPO,
        env={**_env(), "RESULTS_DIR": str(env_results)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_make_report_with_no_runs_says_so_in_one_line(tmp_path: Path):
    proc = make_report(tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and "no runs to compare" in proc.stdout
    assert not (tmp_path / "results" / "report.html").exists()


def test_a_wrong_baseline_is_one_error_line(tmp_path: Path, two_runs):
    *_, run_a, run_b = two_runs
    proc = make_report(tmp_path / "results", f"RUNS={run_a} {run_b}", "BASELINE=nosuch")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: baseline 'nosuch': no such run; runs: a, b"]


@pytest.mark.slow
def test_make_report_renders_the_page_with_the_numbers_of_the_csv(tmp_path: Path, two_runs):
    names, noisy, a, b, run_a, run_b = two_runs
    broken = tmp_path / "broken"
    broken.mkdir()
    results = tmp_path / "results"
    proc = make_report(results, f"RUNS={run_a} {run_b} {broken}", "BASELINE=a")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {results / 'report.html'}: 2 run(s) compared, 1 left out" in proc.stdout
    assert "left out: broken: no eval_per_file.csv" in proc.stdout
    page = (results / "report.html").read_text()
    mean = np.mean(a["pesq"])
    assert f"{mean:.3f} [" in page  # the leaderboard's PESQ mean, computed here directly
    diff = b["pesq"] - a["pesq"]
    assert f"{diff.mean():+.3f} [" in page  # b - a, paired over the same files
    assert f"{np.mean(diff > 0):.0%} of {len(names)} improved" in page
    assert "def write_library" not in page  # the library's code is left out
    assert "cdnjs" not in page  # nothing fetched from elsewhere


def test_report_notebook_is_not_a_kaggle_notebook():
    from builders.build import LOCAL_NOTEBOOKS, notebook_names

    assert "report" in LOCAL_NOTEBOOKS and "report" not in notebook_names(REPO)
    proc = run_python("-m", "builders.build", "report")
    assert proc.returncode == 0, proc.stderr
    assert "report.ipynb: local notebook" in proc.stdout

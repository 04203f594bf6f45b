"""The leaderboard: built from the registry and the pulled summary.json files only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders.outputs import verify_outputs
from builders.registry import RunRecord, load_registry
from builders.report import write_leaderboard
from common.metric_names import METRIC_NAMES as METRICS


def make_summary(model: str, noisy: dict[str, float], enhanced: dict[str, float]) -> dict:
    def stats(v: float) -> dict:
        return {"mean": v, "std": 0.1, "n": 3}

    metrics = {
        "count": 3,
        "noisy": {m: stats(noisy[m]) for m in METRICS},
        "enhanced": {m: stats(enhanced[m]) for m in METRICS},
        "delta": {m: stats(enhanced[m] - noisy[m]) for m in METRICS},
        "failures": [],
    }
    return {
        "model": model,
        "params": 904_705,
        "device": "Tesla T4 x2",
        "epochs": 30,
        "best_epoch": 29,
        "train_seconds": 12917.0,
        "data": "earth16/libri-speech-noise-dataset",
        "metrics": metrics,
    }


def add_pulled_run(results: Path, name: str, version: int, summary: dict, where: str = "") -> None:
    """Record a run and its 'pulled' folder the way `pull` does (files with their sha256)."""
    folder = results / name / f"v{version}"
    (folder / where).mkdir(parents=True, exist_ok=True)
    (folder / where / "summary.json").write_text(json.dumps(summary))
    registry = load_registry(results)
    run = RunRecord(name, f"me/lse-{name}", version, f"2026-03-0{version}T10:00:00+00:00", "abc")
    run.status, run.pulled_dir = "COMPLETE", f"{name}/v{version}"
    run.pulled_at, run.files = "2026-03-10T00:00:00+00:00", verify_outputs(folder)
    registry.add(run)
    registry.save()


def row_of(board: str, label: str) -> str:
    return next(line for line in board.splitlines() if line.startswith(f"| {label} |"))


NOISY = {"pesq": 1.163, "stoi": 0.722, "estoi": 0.55, "si_sdr": -0.25}


def test_rows_show_the_pulled_numbers_best_first_and_unpulled_runs_too(tmp_path: Path):
    results = tmp_path / "results"
    crn = make_summary("crn", NOISY, {"pesq": 1.63, "stoi": 0.864, "estoi": 0.7, "si_sdr": 8.62})
    dpt = make_summary("dpt", NOISY, {"pesq": 1.692, "stoi": 0.866, "estoi": 0.71, "si_sdr": 9.05})
    add_pulled_run(results, "crn", 1, crn)
    add_pulled_run(results, "dpt", 2, dpt, where="outputs")  # summary.json in a subfolder
    registry = load_registry(results)
    registry.add(RunRecord("lite", "me/lse-lite", 1, "2026-03-05T00:00:00+00:00", "abc"))
    registry.runs[-1].status = "RUNNING"
    registry.save()

    board = write_leaderboard(results).read_text()
    lines = [ln for ln in board.splitlines() if ln.startswith("| ") and " v" in ln[:12]]
    assert [ln.split(" | ")[0] for ln in lines] == ["| dpt v2", "| crn v1", "| lite v1"]

    row = row_of(board, "dpt v2")
    for m in METRICS:
        mean = dpt["metrics"]["enhanced"][m]["mean"]
        digits = 2 if m == "si_sdr" else 3
        assert f"**{mean:.{digits}f}**" in row
        assert f"({dpt['metrics']['delta'][m]['mean']:+.{digits}f})" in row
    assert "905K" in row and "3h35m" in row and "30 (29)" in row and "Tesla T4 x2" in row
    assert "(https://www.kaggle.com/code/me/lse-dpt)" in row
    assert "not pulled" in row_of(board, "lite v1")
    assert (results / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert "![" in board and "leaderboard.png" in board


def test_a_summary_edited_after_the_pull_loses_its_numbers(tmp_path: Path):
    results = tmp_path / "results"
    summary = make_summary("crn", NOISY, {"pesq": 1.63, "stoi": 0.86, "estoi": 0.7, "si_sdr": 8.6})
    add_pulled_run(results, "crn", 1, summary)
    summary["metrics"]["enhanced"]["pesq"]["mean"] = 3.9  # typed in by hand
    (results / "crn" / "v1" / "summary.json").write_text(json.dumps(summary))

    with pytest.warns(UserWarning, match="changed since it was pulled"):
        board = write_leaderboard(results).read_text()
    row = row_of(board, "crn v1")
    assert "summary.json changed after the pull" in row and "3.900" not in row
    assert "1.630" not in row and "⚠ files changed after the pull" in row
    assert not (results / "leaderboard.png").exists()


def test_an_empty_registry_gives_an_empty_table(tmp_path: Path):
    board = write_leaderboard(tmp_path / "results").read_text()
    assert board.startswith("# Leaderboard") and "| run |" in board
    assert "leaderboard.png" not in board

"""The scaling table (scripts.bench_scaling): every candidate at every budget, recorded rows with
their figures, missing ones marked, and every candidate within the size and compute budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts import bench_scaling

REPO = Path(__file__).resolve().parents[1]


def test_the_table_shows_recorded_runs_and_marks_missing_ones(tmp_path) -> None:
    cmd = [sys.executable, "-m", "scripts.bench_scaling", "--out", str(tmp_path), "--data",
           str(tmp_path / "no-data")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    names = bench_scaling.candidates()
    assert len(rows) - 1 >= len(names) * len(bench_scaling.BUDGETS)  # header + a row per pair
    records = bench_scaling.load_records(REPO / bench_scaling.RECORDS)
    for r in records:
        line = next(
            row for row in rows if row.startswith(f"| {r['name']} | {r['budget_cpu_min']:g} |")
        )
        assert f"{r['held_out']['pesq']:.3f}" in line and f"{r['steps']:,}" in line
    recorded = {(r["name"], r["budget_cpu_min"]) for r in records}
    missing = [(n, b) for n in names for b in bench_scaling.BUDGETS if (n, b) not in recorded]
    assert sum("not run" in row for row in rows) == len(missing)
    assert "over budget" not in done.stdout


def test_records_name_known_candidates_and_their_commands() -> None:
    data = json.loads((REPO / bench_scaling.RECORDS).read_text())
    names = set(bench_scaling.candidates())
    for r in data["runs"]:
        assert r["name"] in names and r["command"] and r["date"]
        assert r["budget_cpu_min"] in bench_scaling.BUDGETS

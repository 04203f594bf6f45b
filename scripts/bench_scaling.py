"""The `lite` scaling table (issue 23): candidates at equal CPU budgets, one change at a time.

Candidates: `lite-v2` (the baseline) and recipes/scaling/*.toml, each `lite-v2` with one change
(a wider/deeper network, sub-band time GRUs, speech augmentation, ...). A candidate is trained by
the bench's own command on one thread for a budget of its own CPU time:

    python -m scripts.bench_quality --contenders recipes/scaling/NAME.toml --budget-minutes 30 --ckpt

Rows come from docs/scaling.json, where every measured run is recorded (command, date, the
machine's state), and from finished runs in build/bench/runs that are not recorded yet: those
are scored here on the bench's held-out sets (`--record` adds them to docs/scaling.json).
A candidate/budget pair with neither prints "not run": the table shows what is missing.

    python -m scripts.bench_scaling [--data ../shared/data] [--record]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.atomic import atomic_write
from common.models import build_model, count_parameters
from common.recipes import load_recipe
from common.run import model_settings
from scripts import bench_quality
from scripts.bench import macs_per_second

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "docs" / "scaling.json"
SCALING_DIR = REPO / "recipes" / "scaling"
BASELINE = "lite-v2"
BUDGETS = (30.0, 120.0)
METRICS = ("pesq", "stoi", "si_sdr")
MAX_PARAMS, MAX_GMACS = 350_000, 0.3


def candidates() -> dict[str, str]:
    """{name: recipe} for the baseline and every recipes/scaling/*.toml."""
    found = {p.stem: str(p) for p in sorted(SCALING_DIR.glob("*.toml"))}
    return {BASELINE: BASELINE, **found}


def size_of(recipe: str) -> tuple[int, float]:
    """(parameters, G MACs per second of audio) of the recipe's model."""
    cfg = load_recipe(recipe)
    model = build_model(cfg.model.name, **model_settings(cfg)).eval()
    return count_parameters(model), macs_per_second(model, cfg.stft) / 1e9


def load_records(path: Path = RECORDS) -> list[dict]:
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def local_runs(out: Path, names: dict[str, str]) -> list[dict]:
    """Finished bench runs of the candidates in `out`/runs: name, budget, steps, checkpoint."""
    runs = []
    for name in names:
        run_dir = out / "runs" / name
        record, history = run_dir / "bench-run.json", run_dir / "history.json"
        if not (record.is_file() and history.is_file() and (run_dir / "last.pt").is_file()):
            continue
        cmd = json.loads(record.read_text())["command"]
        budget = float(cmd[cmd.index("--max-minutes") + 1])
        hist = json.loads(history.read_text())
        runs.append(
            {
                "name": name,
                "budget_cpu_min": budget,
                "steps": hist["step"],
                "ckpt": str(run_dir / "last.pt"),
            }
        )
    return runs


def score_runs(runs: list[dict], data: Path, out: Path) -> list[dict]:
    systems = {r["ckpt"]: bench_quality.checkpoint_system(r["ckpt"]) for r in runs}
    scored = bench_quality.score_systems(systems, bench_quality.held_out_sets(data, out))
    rows = []
    for r in runs:
        held = scored["held-out mixtures"]["systems"][r["ckpt"]]
        real = scored["real pairs"]["systems"][r["ckpt"]]
        rows.append(
            {
                **{k: v for k, v in r.items() if k != "ckpt"},
                "held_out": {m: held[m] for m in METRICS},
                "real_pairs": {m: real[m] for m in METRICS},
                "real_noisy": {m: scored["real pairs"]["systems"]["noisy"][m] for m in METRICS},
            }
        )
    return rows


def table(rows: list[dict], names: dict[str, str]) -> str:
    lines = [
        "\n`lite` scaling (one thread, CPU-minute budgets; held-out mixtures and the 10 real "
        "pairs, bench_quality's scorer; docs/experiments.md):\n",
        "| candidate | CPU min | steps | params | G MACs/s | held-out PESQ | real PESQ / STOI / "
        "SI-SDR | real PESQ over noisy |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, recipe in names.items():
        params, gmacs = size_of(recipe)
        flag = "" if params <= MAX_PARAMS and gmacs <= MAX_GMACS else " (over budget)"
        for budget in BUDGETS:
            got = [r for r in rows if r["name"] == name and r["budget_cpu_min"] == budget]
            if not got:
                lines.append(
                    f"| {name} | {budget:g} | - | {params:,} | {gmacs:.3f}{flag} | not run | | |"
                )
                continue
            for r in got:
                h, p, n = r["held_out"], r["real_pairs"], r["real_noisy"]
                lines.append(
                    f"| {name} | {budget:g} | {r['steps']:,} | {params:,} | {gmacs:.3f}{flag} | "
                    f"{h['pesq']:.3f} | {p['pesq']:.3f} / {p['stoi']:.3f} / {p['si_sdr']:.2f} | "
                    f"{p['pesq'] - n['pesq']:+.3f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m scripts.bench_scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    ap.add_argument("--record", action="store_true", help=f"add scored local runs to {RECORDS}")
    args = ap.parse_args(argv)
    names = candidates()
    records = load_records()
    known = {(r["name"], r["budget_cpu_min"], r["steps"]) for r in records}
    new = [
        r
        for r in local_runs(args.out, names)
        if (r["name"], r["budget_cpu_min"], r["steps"]) not in known
    ]
    if new and (args.data / "speech").is_dir():
        new = score_runs(new, args.data, args.out)
        if args.record:
            with atomic_write(RECORDS) as f:
                f.write(json.dumps({"runs": records + new}, indent=2) + "\n")
    else:
        new = []
    print(table(records + new, names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Quality half of `make bench`: recipes trained under the same CPU budget, then scored.

Each contender is trained from its recipe by the documented command (`python -m common train
--recipe NAME`, one subprocess each, one thread each) for `--budget-minutes` of its own CPU time
(`train.budget_clock = "cpu"`): every run gets the same compute whatever else the machine is
doing, so contenders can train side by side (`--jobs`). Then every system enhances the same
held-out sets and is scored on real waveforms:

- `make_testset`: whole utterances of test-split speakers mixed with test-split noises at
  0/5/10/15 dB (files no training run ever sees; non-commercial sources left out),
- every real clean/noisy pair in ../shared/data/pairs (VoiceBank-DEMAND p287, DNS 2020
  synthetic test, babble at 0 dB: 10 pairs, none of them used in training).

Systems: the noisy input, `noisereduce` spectral gating, the shipped checkpoints
(checkpoints/*.pt), and the contenders after the same budget. A finished run of the same command
in OUT/runs is reused (so a long bench can be run in parts); `--retrain` trains again.

    python -m scripts.bench_quality [--budget-minutes 30] [--contenders lite lite-v2] [--out build/bench]
    python -m scripts.bench_quality --score runs/a/last.pt runs/b/last.pt   # no training
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import load_audio
from common.config import config_dict
from common.evaluation import EvalItem, evaluate_pairs
from common.fixed_mixtures import make_testset
from common.metric_names import METRIC_NAMES
from common.recipes import load_recipe
from scripts.bench_export import pair_folders, pairs_of

SR = 16000


@dataclass
class Contender:
    """One recipe trained under the budget: its name in the table and its recipe."""

    label: str
    recipe: str  # recipes/NAME.toml


CONTENDERS = {
    c.recipe: c
    for c in [
        Contender("lite, previous recipe", "lite"),
        Contender("lite-v2", "lite-v2"),
        Contender("lite-v2, 12 ms window", "lite-v2-low-latency"),
        Contender("lite, previous recipe, 8 ms window", "lite-low-latency"),
        Contender("crn", "crn"),
        Contender("transformer", "transformer"),
        Contender("dpt", "dpt"),
    ]
}
# The comparison: the previous `lite` recipe against the new one, and the new
# low-latency configuration, at equal budget. `--contenders` picks others (any recipe name).
DEFAULT_CONTENDERS = ["lite", "lite-v2", "lite-v2-low-latency"]
# Every contender gets the same budget on the same clock and one thread, with a short warmup so
# that a slow model is not still warming up when a few-minute budget ends.
BUDGET_OVERRIDES = [
    "--set", "train.warmup_epochs=0.1", "--set", "train.budget_clock=cpu",
    "--set", "train.num_workers=0", "--no-progress",
]  # fmt: skip


def contender(recipe: str) -> Contender:
    return CONTENDERS.get(recipe) or Contender(recipe, recipe)


def run_dir_of(c: Contender, out: Path) -> Path:
    # A recipe given as a path (`--contenders my/exp.toml`) is named by its file.
    return out / "runs" / Path(c.recipe).name.removesuffix(".toml")


def train_command(c: Contender, data: Path, out: Path, minutes: float) -> list[str]:
    return [
        "-m", "common", "train", "--recipe", c.recipe, "--data-root", str(data.resolve()),
        "--out", str(run_dir_of(c, out)), "--overwrite", "--max-minutes", f"{minutes:g}",
        *BUDGET_OVERRIDES,
    ]  # fmt: skip


def recipe_settings(recipe: str) -> dict:
    """What the recipe sets, as plain values: an edited recipe is another run, not a reused one
    (its description and Kaggle title do not count)."""
    values = config_dict(load_recipe(recipe))
    values.pop("description", None)
    return values


def train_under_budget(
    c: Contender, data: Path, out: Path, minutes: float, retrain: bool = False
) -> dict:
    """Run the training command for `c` on one thread (or reuse its finished run)."""
    run_dir = run_dir_of(c, out)
    cmd = train_command(c, data, out, minutes)
    recipe = recipe_settings(c.recipe)
    record = run_dir / "bench-run.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    same = done.get("command") == cmd and done.get("recipe") == recipe
    if retrain or not same or not (run_dir / "last.pt").is_file():
        print(f"== training {c.label} ({c.recipe}) for {minutes:g} CPU min", flush=True)
        log = run_dir.with_name(run_dir.name + ".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        start = time.monotonic()
        with open(log, "w") as f:
            proc = subprocess.run(
                [sys.executable, *cmd], stdout=f, stderr=subprocess.STDOUT, env=env
            )
        if proc.returncode:
            raise SystemExit(f"training {c.recipe} failed (exit {proc.returncode}); see {log}")
        done = {"command": cmd, "recipe": recipe, "wall_seconds": time.monotonic() - start}
        record.write_text(json.dumps(done, indent=2))
    else:
        print(f"== {c.label}: reusing the finished run in {run_dir}", flush=True)
    history = json.loads((run_dir / "history.json").read_text())
    return {
        "recipe": c.recipe,
        "ckpt": str(run_dir / "last.pt"),
        "wall_seconds": done["wall_seconds"],
        "train_seconds": history["train_seconds"],
        "steps": history["step"],
        "clips_seen": history["step"] * history["train_config"]["effective_batch_size"],
    }


def train_all(
    contenders: list[Contender], data: Path, out: Path, minutes: float, jobs: int, retrain: bool
) -> dict[str, dict]:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            c.label: pool.submit(train_under_budget, c, data, out, minutes, retrain)
            for c in contenders
        }
        return {label: f.result() for label, f in futures.items()}


def _load_set(folders: list[Path]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(p.name, load_audio(p.clean), load_audio(p.noisy)) for p in pairs_of(folders)]


def _score(
    loaded: list[tuple[str, np.ndarray, np.ndarray]], fn: Callable[[np.ndarray], np.ndarray]
) -> dict:
    items = [EvalItem(name, clean=c, noisy=n, enhanced=fn(n)) for name, c, n in loaded]
    return evaluate_pairs(items, progress=False).summary


def _means(summary: dict, group: str) -> dict[str, float | None]:
    return {m: (summary[group][m] or {}).get("mean") for m in METRIC_NAMES}


def score_systems(systems: dict[str, Callable], sets: dict[str, list[Path]]) -> dict:
    """{set: {system: {metric: mean}}}, with the noisy input as its own row."""
    out: dict[str, dict] = {}
    for set_name, folders in sets.items():
        loaded = _load_set(folders)
        rows: dict[str, dict] = {}
        for label, fn in systems.items():
            start = time.monotonic()
            summary = _score(loaded, fn)
            rows.setdefault("noisy", _means(summary, "noisy"))
            rows[label] = _means(summary, "enhanced")
            print(f"{set_name}: {label} scored in {time.monotonic() - start:.0f} s", flush=True)
        out[set_name] = {"items": len(loaded), "systems": rows}
    return out


def markdown(quality: dict, trained: dict) -> str:
    lines = []
    for set_name, block in quality.items():
        lines += [
            f"\n{set_name} ({block['items']} items)\n",
            "| system | PESQ-wb | STOI | ESTOI | SI-SDR (dB) | training |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for label, m in block["systems"].items():
            t = trained.get(label)
            note = f"{t['steps']} steps in {t['train_seconds'] / 60:.1f} CPU min" if t else ""
            cells = " | ".join("-" if m[k] is None else f"{m[k]:.3f}" for k in METRIC_NAMES)
            lines.append(f"| {label} | {cells} | {note} |")
    return "\n".join(lines)


def held_out_sets(data: Path, out: Path) -> dict[str, list[Path]]:
    return {
        "held-out mixtures": [
            make_testset(data, out / "testset", n_items=48, exclude_noncommercial=True)
        ],
        "real pairs": pair_folders(data),
    }


def checkpoint_system(ckpt: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    from common.enhance import load_enhancer

    enhancer = load_enhancer(ckpt, "cpu")
    return lambda x: enhancer.enhance(x, SR)


def shipped_checkpoints() -> list[Path]:
    return sorted(Path("checkpoints").glob("*.pt"))


def run(
    data: Path,
    out: Path,
    minutes: float,
    shipped: list[Path],
    recipes: list[str] | None = None,
    jobs: int = 1,
    retrain: bool = False,
) -> dict:
    import noisereduce

    sets = held_out_sets(data, out)
    contenders = [contender(r) for r in (recipes or DEFAULT_CONTENDERS)]
    trained = train_all(contenders, data, out, minutes, jobs, retrain)
    systems: dict[str, Callable] = {
        "noisereduce": lambda x: noisereduce.reduce_noise(y=x, sr=SR).astype(np.float32)
    }
    for ckpt in shipped:
        systems[f"shipped {ckpt.name}"] = checkpoint_system(ckpt)
    for label, t in trained.items():
        systems[f"{label}, {minutes:g} min"] = checkpoint_system(t["ckpt"])
    quality = score_systems(systems, sets)
    trained = {f"{label}, {minutes:g} min": t for label, t in trained.items()}
    return {"budget_minutes": minutes, "trained": trained, "sets": quality}


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """The options every bench script takes: where the shared audio is and where results go."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    return ap


def add_training_options(ap: argparse.ArgumentParser) -> None:
    """The options of the scripts that train the contenders (bench_quality, bench)."""
    ap.add_argument(
        "--budget-minutes", type=float, default=30.0, help="CPU minutes of training per recipe"
    )
    ap.add_argument(
        "--contenders", nargs="+", metavar="RECIPE", default=DEFAULT_CONTENDERS,
        help=f"recipes to train and compare (default: {' '.join(DEFAULT_CONTENDERS)})",
    )  # fmt: skip
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trainings at a time")
    ap.add_argument("--retrain", action="store_true", help="do not reuse finished runs")


def add_shipped_option(ap: argparse.ArgumentParser) -> None:
    """--ckpt: the shipped checkpoints a scoring script scores."""
    ap.add_argument(
        "--ckpt", type=Path, nargs="*", default=None,
        help="shipped checkpoints to score (default: checkpoints/*.pt)",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    add_training_options(ap)
    add_shipped_option(ap)
    ap.add_argument(
        "--score", type=Path, nargs="+", metavar="CKPT", help="only score these checkpoints"
    )
    args = ap.parse_args(argv)
    if not (args.data / "speech").is_dir():
        print(f"quality skipped: {args.data}/speech is missing (set --data)")
        return 0
    if args.score:
        systems = {str(ckpt): checkpoint_system(ckpt) for ckpt in args.score}
        quality = score_systems(systems, held_out_sets(args.data, args.out))
        print(markdown(quality, {}))
        return 0
    shipped = shipped_checkpoints() if args.ckpt is None else args.ckpt
    results = run(
        args.data, args.out, args.budget_minutes, shipped, args.contenders, args.jobs, args.retrain
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(results, indent=2))
    print(markdown(results["sets"], results["trained"]))
    print(f"\nwrote {args.out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

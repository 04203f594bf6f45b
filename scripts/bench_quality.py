"""Quality half of `make bench`: every model trained under the same CPU budget, then scored.

Each model is trained from its recipe by the documented command (`python -m common train --recipe
NAME`, one subprocess per model, the whole machine) for `--budget-minutes`, then every system enhances the
same held-out sets and is scored on real waveforms:

- `make_testset`: whole utterances of test-split speakers mixed with test-split noises at
  0/5/10/15 dB (files no training run ever sees; non-commercial sources left out),
- every real clean/noisy pair in ../shared/data/pairs (VoiceBank-DEMAND p287, DNS 2020
  synthetic test, babble at 0 dB: 10 pairs, none of them used in training).

Systems: the noisy input, `noisereduce` spectral gating, the shipped `checkpoints/lite-dev.pt`,
and crn / transformer / dpt / lite / lite at the low-latency STFT, each after the same budget.

    python -m scripts.bench_quality [--budget-minutes 3] [--out build/bench]
    python -m scripts.bench_quality --score runs/a/last.pt runs/b/last.pt   # no training
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import load_audio
from common.metrics import METRIC_NAMES, EvalItem, evaluate_pairs
from common.mixing import make_testset
from scripts.bench_export import pair_folders, pairs_of

SR = 16000


@dataclass
class Contender:
    """One model trained under the budget: its name in the table and its recipe."""

    label: str
    recipe: str  # recipes/NAME.toml: each model's best known recipe


CONTENDERS = [
    Contender("crn", "crn"),
    Contender("transformer", "transformer"),
    Contender("dpt", "dpt"),
    Contender("lite", "lite"),
    Contender("lite (8 ms window)", "lite-low-latency"),
]
# Every contender gets the same budget, and a short warmup, so that a slow model is not still
# warming up when a few-minute budget ends.
BUDGET_OVERRIDES = ["--set", "train.warmup_epochs=0.1", "--no-progress"]


def train_under_budget(c: Contender, data: Path, out: Path, minutes: float) -> dict:
    """Run the training command for `c`; the checkpoint and what the budget bought."""
    run_dir = out / "runs" / c.label.replace(" ", "_").replace("(", "").replace(")", "")
    cmd = [
        sys.executable, "-m", "common", "train", "--recipe", c.recipe, "--data-root", str(data),
        "--out", str(run_dir), "--overwrite", "--max-minutes", str(minutes), *BUDGET_OVERRIDES,
    ]  # fmt: skip
    print(f"\n== training {c.label} for {minutes:g} min", flush=True)
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    history = json.loads((run_dir / "history.json").read_text())
    return {
        "ckpt": str(run_dir / "last.pt"),
        "wall_seconds": time.monotonic() - start,
        "train_seconds": history["train_seconds"],
        "steps": history["step"],
        "clips_seen": history["step"] * history["train_config"]["effective_batch_size"],
    }


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
            note = f"{t['steps']} steps in {t['train_seconds'] / 60:.1f} min" if t else ""
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


def run(data: Path, out: Path, minutes: float, shipped: Path | None) -> dict:
    import noisereduce

    sets = held_out_sets(data, out)
    trained = {c.label: train_under_budget(c, data, out, minutes) for c in CONTENDERS}
    systems: dict[str, Callable] = {
        "noisereduce": lambda x: noisereduce.reduce_noise(y=x, sr=SR).astype(np.float32)
    }
    if shipped is not None and shipped.is_file():
        systems[f"lite, shipped ({shipped.name})"] = checkpoint_system(shipped)
    for label, t in trained.items():
        systems[f"{label}, {minutes:g} min"] = checkpoint_system(t["ckpt"])
    quality = score_systems(systems, sets)
    trained = {f"{label}, {minutes:g} min": t for label, t in trained.items()}
    return {"budget_minutes": minutes, "trained": trained, "sets": quality}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    ap.add_argument("--budget-minutes", type=float, default=3.0, help="training per model")
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/lite-dev.pt"))
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
    results = run(args.data, args.out, args.budget_minutes, args.ckpt)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(results, indent=2))
    print(markdown(results["sets"], results["trained"]))
    print(f"\nwrote {args.out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

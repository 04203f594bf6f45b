"""DNSMOS part of `make bench`: quality of recordings that have no clean reference.

Every WAV/FLAC file under DATA/noisy_only (the DNS Challenge 2020 blind and real test clips) is
scored by DNSMOS (P.835 SIG / BAK / OVRL and P.808, `common.dnsmos`) as it is, and after each
system: `noisereduce`, the shipped checkpoints (checkpoints/*.pt) and the contenders `make bench`
trained under its CPU budget (OUT/runs/NAME/last.pt, where that run exists). Means over the files;
a file that cannot be scored is counted in `n` and named in the JSON.

    python -m scripts.bench_dnsmos [--data ../shared/data] [--out build/bench] [--ckpt CKPT ...]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.audio import list_audio, load_audio
from common.evaluation import EvalItem, evaluate_pairs
from common.metric_names import DNSMOS_METRICS, METRIC_LABELS
from scripts.bench_quality import (
    DEFAULT_CONTENDERS,
    SR,
    add_shipped_option,
    bench_parser,
    checkpoint_system,
    contender,
    run_dir_of,
    shipped_checkpoints,
)

NOISY_ONLY = "noisy_only"


def trained_contenders(out: Path, recipes: list[str]) -> dict[str, Path]:
    """{label: last.pt} of the contenders whose bench run exists in OUT/runs."""
    found = {}
    for recipe in recipes:
        c = contender(recipe)
        run_dir = run_dir_of(c, out)
        if (run_dir / "last.pt").is_file() and (run_dir / "history.json").is_file():
            history = json.loads((run_dir / "history.json").read_text())
            found[f"{c.label}, {history['train_seconds'] / 60:.0f} CPU min"] = run_dir / "last.pt"
    return found


def score_dnsmos(loaded: list[tuple[str, np.ndarray]], fn: Callable | None) -> dict:
    """DNSMOS means of one system's outputs (the noisy input itself when `fn` is None)."""
    # Each output is scored as the item's only signal: the noisy input is scored once, in its
    # own row, instead of again beside every system.
    items = [
        EvalItem(name, clean=None, noisy=wav if fn is None else fn(wav)) for name, wav in loaded
    ]
    summary = evaluate_pairs(items, progress=False, dnsmos=True).summary
    return {
        "means": {m: summary["noisy"][m]["mean"] for m in DNSMOS_METRICS},
        "n": min(summary["noisy"][m]["n"] for m in DNSMOS_METRICS),
        "failures": summary["failures"],
    }


def run(data: Path, out: Path, shipped: list[Path], recipes: list[str]) -> dict:
    import noisereduce

    root = data / NOISY_ONLY
    files = list_audio(root)
    loaded = [(p.relative_to(root).as_posix(), load_audio(p)) for p in files]
    systems: dict[str, Callable | None] = {
        "noisy input": None,
        "noisereduce": lambda x: noisereduce.reduce_noise(y=x, sr=SR).astype(np.float32),
    }
    for ckpt in shipped:
        systems[f"shipped {ckpt.name}"] = checkpoint_system(ckpt)
    for label, ckpt in trained_contenders(out, recipes).items():
        systems[label] = checkpoint_system(ckpt)
    rows = {}
    for label, fn in systems.items():
        start = time.monotonic()
        rows[label] = score_dnsmos(loaded, fn)
        print(f"dnsmos: {label} scored in {time.monotonic() - start:.0f} s", flush=True)
    seconds = sum(len(wav) for _, wav in loaded) / SR
    return {"folder": str(root), "files": len(loaded), "seconds": seconds, "systems": rows}


def markdown(result: dict) -> str:
    names = " | ".join(METRIC_LABELS[m].removeprefix("DNSMOS ") for m in DNSMOS_METRICS)
    lines = [
        f"\nDNSMOS on {result['folder']} ({result['files']} files, {result['seconds'] / 60:.1f} "
        "min, no clean reference), mean over files\n",
        f"| system | {names} | files scored |",
        "|---|" + "---:|" * (len(DNSMOS_METRICS) + 1),
    ]
    for label, row in result["systems"].items():
        cells = " | ".join(
            "-" if row["means"][m] is None else f"{row['means'][m]:.2f}" for m in DNSMOS_METRICS
        )
        lines.append(f"| {label} | {cells} | {row['n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = bench_parser(__doc__)
    add_shipped_option(ap)
    ap.add_argument(
        "--contenders", nargs="*", metavar="RECIPE", default=DEFAULT_CONTENDERS,
        help="bench runs to score, where OUT/runs has them (default: the bench's contenders)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if not list_audio(args.data / NOISY_ONLY):
        print(f"DNSMOS skipped: no audio under {args.data / NOISY_ONLY} (set --data)")
        return 0
    shipped = shipped_checkpoints() if args.ckpt is None else args.ckpt
    result = run(args.data, args.out, shipped, args.contenders)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dnsmos.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"\nwrote {args.out / 'dnsmos.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

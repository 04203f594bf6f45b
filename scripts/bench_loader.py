"""Can one loader process keep a GPU busy? Training examples per second of each data source.

Times `dataset[i]` (read, mix, level: what a DataLoader worker does) on one thread for the
remixing of a paired corpus (`common.remix`), speech + noise mixing (`common.mixing`) and fixed
pairs (`common.paired_dataset.PairedDataset`), in seconds of audio produced per second, and divides the
GPU's appetite by it: how many loader workers each model needs on the H200 step times measured
by `python -m scripts.bench_gpu` (docs/experiments.md; a T4 steps slower, so it needs fewer).

    python -m scripts.bench_loader [--data ../shared/data] [--pairs build/bench/pairs-corpus]

The paired corpus is made from --data by `python -m common data make-pairs` when absent.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import torch

from common.fixed_mixtures import make_paired_corpus
from common.recipes import apply_overrides, load_recipe
from common.run import prepare_data

# Audio seconds per second one training step consumes on one H200, batch 32 x 2 s
# (`python -m scripts.bench_gpu`, docs/experiments.md, "GPU check"). Recorded, not measured here.
H200_AUDIO_SECONDS_PER_S = {"lite": 2773, "crn": 1838, "transformer": 1502, "dpt": 1370}
SOURCES = {
    "remix (paired corpus, residual noise)": ("remix", "pairs"),
    "mix (speech + noise folders)": ("mix", "data"),
    "fixed pairs (PairedDataset)": ("kaggle", "pairs"),
}


def items_per_second(dataset, n: int) -> float:
    """Examples per CPU second of this process: what one worker gives when it has a core to
    itself, whatever else the machine runs (the wall clock of a shared machine says less)."""
    dataset[0]  # opens the first files outside the timing
    start = time.process_time()
    for i in range(n):
        dataset[i % len(dataset)]
    return n / (time.process_time() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("SHARED_DATA", "../shared/data"))
    parser.add_argument("--pairs", default="build/bench/pairs-corpus")
    parser.add_argument("--items", type=int, default=300, help="examples timed per source")
    parser.add_argument("--segment", type=float, default=2.0, help="seconds per example")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pairs = Path(args.pairs)
    if not (pairs / "train").is_dir():
        print(f"making the paired corpus {pairs} from {args.data} ...", flush=True)
        make_paired_corpus(Path(args.data), pairs)
    roots = {"pairs": pairs, "data": Path(args.data)}
    rows = []
    for label, (source, root) in SOURCES.items():
        cfg = apply_overrides(
            load_recipe("lite-v2"),
            {
                "data.source": source,
                "data.root": str(roots[root]),
                "data.segment_seconds": args.segment,
                "data.mix_items": args.items,
            },
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = prepare_data(cfg, Path("build/bench/loader-work"))
        rate = items_per_second(data.train, args.items)
        rows.append((label, rate, rate * args.segment))
    print(
        f"\none loader process, one thread, {args.segment:g}-s examples ({args.items} each), "
        "per CPU second"
    )
    print("| source | examples/s | audio s/s | " + " | ".join(
        f"workers for {m} (H200)" for m in H200_AUDIO_SECONDS_PER_S
    ) + " |")  # fmt: skip
    print("|---|---:|---:|" + "---:|" * len(H200_AUDIO_SECONDS_PER_S))
    for label, rate, audio in rows:
        need = " | ".join(f"{demand / audio:.1f}" for demand in H200_AUDIO_SECONDS_PER_S.values())
        print(f"| {label} | {rate:.0f} | {audio:.0f} | {need} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

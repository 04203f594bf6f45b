"""CPU speed of data-parallel training: N processes (gloo) against one, same effective batch.

    python -m scripts.bench_ddp [--model lite] [--batch-size 8] [--steps 20] [--nproc 2]

Both runs use the real `Trainer` on in-memory noise (so data loading does not count) and the
same effective batch; the N-process run gives each process batch/N items and
cpu_count/N threads, the single process gets all threads. Timed: `--steps` optimizer steps after
`--warmup` steps (first-call overheads excluded). Prints steps/s, samples/s and the speed-up;
the machine load is printed too, because other work on the same cores skews the result.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from common.config import LossConfig, StftConfig, TrainConfig
from common.distributed import dist_info, launch_processes
from common.losses import EnhancementLoss
from common.models import build_model
from common.train import Trainer, seed_everything


class NoiseBatches(torch.utils.data.Dataset):
    """Fixed random (noisy, clean) pairs held in memory."""

    def __init__(self, n: int, samples: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.clean = 0.1 * torch.randn(n, samples, generator=g)
        self.noisy = self.clean + 0.05 * torch.randn(n, samples, generator=g)

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int):
        return self.noisy[i], self.clean[i]


def _timed_run(args: argparse.Namespace, out: str) -> None:
    seed_everything(0)
    stft_cfg = StftConfig()
    total = args.warmup + args.steps
    trainer = Trainer(
        build_model(args.model),
        EnhancementLoss(LossConfig(), stft_cfg),
        NoiseBatches(args.batch_size * (total + 1), int(args.seconds * 16000)),
        None,
        TrainConfig(
            epochs=1,
            batch_size=args.batch_size,
            warmup_epochs=0,
            num_workers=0,
            max_steps=args.warmup,
            checkpoint_every=0,
            progress=False,
        ),  # fmt: skip
        stft_cfg,
        out,
    )
    trainer.fit()
    trainer.cfg.max_steps = total
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    if dist_info().is_main:
        result = {"seconds": seconds, "threads": torch.get_num_threads()}
        Path(out, "bench.json").write_text(json.dumps(result))


def measure(args: argparse.Namespace, nproc: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        launch_processes(_timed_run, nproc, (args, out), start_method="spawn")
        result = json.loads(Path(out, "bench.json").read_text())
    steps_s = args.steps / result["seconds"]
    return {
        "nproc": nproc,
        "threads": result["threads"],
        "steps_s": steps_s,
        "samples_s": steps_s * args.batch_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_ddp", description=__doc__)
    parser.add_argument("--model", default="lite")
    parser.add_argument("--batch-size", type=int, default=8, help="effective batch")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each item")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args(argv)

    rows = [measure(args, 1), measure(args, args.nproc)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model {args.model}, effective batch {args.batch_size} x {args.seconds:g} s, "
        f"{args.steps} timed steps, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(f"{'processes':>9} {'threads/proc':>12} {'steps/s':>8} {'samples/s':>9} {'speed-up':>8}")
    for row in rows:
        print(
            f"{row['nproc']:>9} {row['threads']:>12} {row['steps_s']:>8.2f} "
            f"{row['samples_s']:>9.1f} {row['steps_s'] / rows[0]['steps_s']:>7.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where one training step of a recipe spends its time on this CPU (issue 15's first lever).

    python -m scripts.bench_train_step [--recipe lite] [--steps 20] [--data ../shared/data]

Times, per step and as a share of the whole: making the batch (mixing on the fly), the STFT,
the network forward, the loss, backward, and the optimizer step; then the same step under bf16
autocast (this CPU has AVX-512 BF16), to see what each lever could buy before an equal-budget
quality run decides whether it is kept. One thread per process, as training uses here.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from common.audio import istft, stft
from common.losses import EnhancementLoss
from common.models import build_model
from common.recipes import apply_overrides, load_recipe
from common.run import model_settings, prepare_data

PARTS = ("batch", "stft", "forward", "loss", "backward", "optimizer")


def time_steps(cfg, data, steps: int, bf16: bool) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(cfg.model.name, **model_settings(cfg))
    loss_fn = EnhancementLoss(cfg.loss, cfg.stft)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    totals = dict.fromkeys(PARTS, 0.0)
    n = cfg.train.batch_size
    for step in range(steps + 2):  # the first two warm up allocators and caches
        marks = [time.perf_counter()]
        items = [data.train[(step * n + i) % len(data.train)] for i in range(n)]
        noisy = torch.stack([x for x, _ in items])
        clean = torch.stack([y for _, y in items])
        marks.append(time.perf_counter())
        noisy_spec, clean_spec = stft(noisy, cfg.stft), stft(clean, cfg.stft)
        marks.append(time.perf_counter())
        with autocast:
            est_spec = model(noisy_spec)
        marks.append(time.perf_counter())
        est_spec = est_spec.to(torch.complex64)
        est_wav = istft(est_spec, cfg.stft, noisy.shape[-1])
        loss, _ = loss_fn(est_spec, clean_spec, est_wav, clean)
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if step >= 2:
            for part, a, b in zip(PARTS, marks, marks[1:]):
                totals[part] += b - a
    return {k: v / steps for k, v in totals.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_train_step", description=__doc__)
    ap.add_argument("--recipe", default="lite")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--data", default="../shared/data", help="speech/ + noise/ for mix recipes")
    ap.add_argument("--work", type=Path, default=Path("build/bench/step-work"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = apply_overrides(load_recipe(args.recipe), {"data.root": args.data})
    data = prepare_data(cfg, args.work)
    rows = {"fp32": time_steps(cfg, data, args.steps, False)}
    rows["bf16 autocast"] = time_steps(cfg, data, args.steps, True)
    print(
        f"\n{args.recipe}: one step of batch {cfg.train.batch_size} x {cfg.data.segment_seconds:g} s"
    )
    print("| step part | " + " | ".join(f"{k} ms" for k in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for part in (*PARTS, "total"):
        cells = [1000 * (sum(r.values()) if part == "total" else r[part]) for r in rows.values()]
        print(f"| {part} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    fp32, bf16 = (sum(r.values()) for r in rows.values())
    print(f"bf16 autocast / fp32 step time: {bf16 / fp32:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

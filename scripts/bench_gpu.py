"""Training throughput of every model on one device (a GPU where there is one).

    python -m scripts.bench_gpu [--steps 30] [--batch-size 32] [--device auto] [--json OUT.json]

For each model, with its own recipe's STFT and loss (recipes/MODEL.toml): full training steps
(STFT, forward under fp16 autocast on CUDA, loss, backward with the GradScaler, Adam) on a random
batch already on the device, so the figure is the model's and not the data loader's. Prints one
table: ms per step, training audio seconds per second, peak device memory. The data pipeline's
own rate is measured separately by a real training run (its history's steps per second).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common.audio import istft, stft
from common.losses import EnhancementLoss
from common.models import build_model, count_parameters, model_names
from common.recipes import load_recipe, recipe_names
from common.run import model_settings


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(name: str, device: torch.device, batch: int, seconds: float, steps: int) -> dict:
    """Mean time of `steps` training steps of `name` (after two warm-up steps)."""
    cfg = load_recipe(name) if name in recipe_names() else None
    if cfg is None:
        raise SystemExit(f"error: recipes/{name}.toml not found; each model needs its recipe")
    torch.manual_seed(0)
    model = build_model(name, **model_settings(cfg)).to(device)
    loss_fn = EnhancementLoss(cfg.loss, cfg.stft).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    n = int(round(seconds * cfg.stft.sample_rate))
    noisy = 0.1 * torch.randn(batch, n, device=device)
    clean = 0.1 * torch.randn(batch, n, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(steps + 2):
        if step == 2:
            _sync(device)
            start = time.perf_counter()
        noisy_spec, clean_spec = stft(noisy, cfg.stft), stft(clean, cfg.stft)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            est_spec = model(noisy_spec)
        est_spec = est_spec.to(torch.complex64)
        loss, _ = loss_fn(est_spec, clean_spec, istft(est_spec, cfg.stft, n), clean)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    _sync(device)
    step_s = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "model": name,
        "params": count_parameters(model),
        "batch": batch,
        "segment_seconds": seconds,
        "ms_per_step": 1000 * step_s,
        "audio_s_per_s": batch * seconds / step_s,
        "peak_gib": peak,
        "amp": use_amp,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_gpu", description=__doc__)
    ap.add_argument("--models", nargs="*", default=None, help="default: every model")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--segment-seconds", type=float, default=2.0)
    ap.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}")
    rows = []
    for name in args.models or model_names():
        rows.append(time_model(name, device, args.batch_size, args.segment_seconds, args.steps))
        r = rows[-1]
        print(f"  {name}: {r['ms_per_step']:.1f} ms/step", flush=True)
    amp = "fp16 autocast" if device.type == "cuda" else "fp32"
    print(f"\ntraining step, batch {args.batch_size} x {args.segment_seconds:g} s, {amp}")
    print("| model | params | ms / step | audio s / s | peak GiB |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(
            f"| {r['model']} | {r['params']:,} | {r['ms_per_step']:.1f} | "
            f"{r['audio_s_per_s']:,.0f} | {peak} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

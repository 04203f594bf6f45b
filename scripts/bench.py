"""`make bench`: size, speed and quality of every model, measured in one run on this machine.

1. Speed (one thread): parameters, MACs per second of audio, offline RTF on 10 s, training
   throughput (3 s clips, batch 8), and for `lite` the streaming per-hop compute at the default
   and the low-latency STFT.
2. Evaluation throughput: `evaluate_pairs` on 105 pairs of 3 s (scripts.bench_eval).
3. Quality (scripts.bench_quality): crn, transformer, dpt, lite and low-latency lite trained for
   the same CPU budget, plus noisy, `noisereduce` and the shipped checkpoint, on held-out sets.

Writes build/bench/results.json and prints Markdown tables. Times are from this machine at this
moment (shared, noisy): compare the ratios within one run, not absolute numbers across runs.

    python -m scripts.bench [--budget-minutes 3] [--ckpt checkpoints/lite-dev.pt] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common.audio import StftConfig, istft, stft
from common.losses import EnhancementLoss, LossConfig
from common.models import build_model, count_parameters, model_names
from common.models.lite import LOW_LATENCY_STFT, LiteConfig
from common.streaming import StreamingEnhancer
from scripts import bench_quality
from scripts.bench_eval import time_evaluation

SR = 16000


def macs_per_second(model: torch.nn.Module, cfg: StftConfig) -> float:
    spec = stft(torch.randn(1, SR), cfg)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(spec)
    return counter.get_total_flops() / 2


def offline_rtf(
    model: torch.nn.Module, cfg: StftConfig, seconds: float = 10.0, repeats: int = 3
) -> float:
    wav = torch.randn(1, int(SR * seconds)) * 0.1
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            istft(model(stft(wav, cfg)), cfg, wav.shape[-1])
            best = min(best, time.perf_counter() - start)
    return best / seconds


def train_throughput(
    model: torch.nn.Module, cfg: StftConfig, steps: int, batch: int = 8, seconds: float = 3.0
) -> float:
    """3 s clips per second through forward, loss, backward and an Adam step."""
    loss_fn = EnhancementLoss(LossConfig(), cfg)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    noisy, clean = (
        torch.randn(batch, int(SR * seconds)) * 0.1,
        torch.randn(batch, int(SR * seconds)) * 0.1,
    )
    model.train()

    def step() -> None:
        est = model(stft(noisy, cfg))
        loss, _ = loss_fn(est, stft(clean, cfg), istft(est, cfg, noisy.shape[-1]), clean)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    model.eval()
    return steps * batch / (time.perf_counter() - start)


def streaming_hop_ms(
    model: torch.nn.Module, cfg: StftConfig, hops: int = 400
) -> tuple[float, float]:
    streamer = StreamingEnhancer(model, cfg)
    hop = np.random.default_rng(0).standard_normal(cfg.hop_length).astype(np.float32) * 0.1
    times = []
    with torch.no_grad():
        for _ in range(hops):
            start = time.perf_counter()
            streamer.process(hop)
            times.append((time.perf_counter() - start) * 1000)
    times = np.array(times[20:])
    return float(np.median(times)), float(np.percentile(times, 99))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ckpt", type=Path, default=Path("checkpoints/lite-dev.pt"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("build/bench"))
    ap.add_argument("--train-steps", type=int, default=2, help="timed steps per model")
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=3.0,
        help="CPU training budget per model for the quality table (5 runs)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # the targets are single-thread numbers
    torch.manual_seed(0)
    cfg = StftConfig()
    rows = []
    for name in model_names():
        model = build_model(name).eval()
        row = {
            "model": name,
            "params": count_parameters(model),
            "gmacs_per_s": macs_per_second(model, cfg) / 1e9,
            "rtf_1thread": offline_rtf(model, cfg),
            "train_clips_per_s": train_throughput(model, cfg, args.train_steps),
        }
        if name == "lite":
            row["hop_ms_p50"], row["hop_ms_p99"] = streaming_hop_ms(model, cfg)
            low = LOW_LATENCY_STFT
            low_model = build_model("lite", **vars(LiteConfig.low_latency())).eval()
            p50, p99 = streaming_hop_ms(low_model, low)
            row["low_latency"] = {
                "stft": low.to_dict(),
                "window_ms": low.window_ms,
                "hop_ms_p99": p99,
                "total_latency_ms": low.window_ms + p99,
            }
        rows.append(row)
        print(
            f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'low_latency'})}",
            flush=True,
        )
    dpt = next(r for r in rows if r["model"] == "dpt")
    lite = next(r for r in rows if r["model"] == "lite")
    ratios = {
        "lite_vs_dpt_train_throughput": lite["train_clips_per_s"] / dpt["train_clips_per_s"],
        "lite_vs_dpt_rtf": dpt["rtf_1thread"] / lite["rtf_1thread"],
    }
    results: dict = {"speed": rows, "ratios": ratios}
    have_data = (args.data / "speech").is_dir()
    if have_data:
        results["evaluation_105_pairs"] = time_evaluation(args.data)
        # Training runs in subprocesses; scoring enhances the test sets on every core.
        torch.set_num_threads(os.cpu_count() or 1)
        results["quality"] = bench_quality.run(args.data, args.out, args.budget_minutes, args.ckpt)
    else:
        print(f"evaluation and quality skipped: {args.data}/speech is missing (set --data)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))

    print(
        "\n| model | params | G MACs/s | RTF (1 thread) | train 3 s clips/s | stream hop p50 / p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        hop = f"{r['hop_ms_p50']:.2f} / {r['hop_ms_p99']:.2f}" if "hop_ms_p50" in r else "-"
        print(
            f"| {r['model']} | {r['params']:,} | {r['gmacs_per_s']:.3f} | {r['rtf_1thread']:.4f} | "
            f"{r['train_clips_per_s']:.2f} | {hop} |"
        )
    low = lite["low_latency"]
    print(
        f"\nlite vs dpt: training throughput x{ratios['lite_vs_dpt_train_throughput']:.1f}, "
        f"offline speed x{ratios['lite_vs_dpt_rtf']:.1f}"
    )
    print(
        f"low-latency STFT {low['stft']['n_fft']}/{low['stft']['hop_length']}: window {low['window_ms']:.1f} ms"
        f" + hop compute p99 {low['hop_ms_p99']:.2f} ms = {low['total_latency_ms']:.1f} ms"
    )
    for r in results.get("evaluation_105_pairs", []):
        print(
            f"evaluate_pairs, {r['files']} pairs ({r['signals']}), {r['workers']} worker(s): "
            f"{r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU"
        )
    if "quality" in results:
        q = results["quality"]
        print(f"\nquality after {q['budget_minutes']:g} min of CPU training per model:")
        print(bench_quality.markdown(q["sets"], q["trained"]))
    print(f"\nwrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench`: size, speed and quality, measured in one run on this machine.

1. Speed of every architecture (one thread): parameters, MACs per second of audio, offline RTF
   on 10 s, training throughput (3 s clips, batch 8).
2. Speed of every shipped checkpoint (checkpoints/*.pt) and of the low-latency recipe: streaming
   per-hop compute, in PyTorch and through its streaming ONNX export, and the total latency
   (window + per-hop p99); then `enhance` on a folder of 30 minutes of speech and on one of 800
   short files (2-4 s), start-up included (scripts.bench_enhance).
3. Evaluation throughput: `evaluate_pairs` on 105 pairs of 3 s (scripts.bench_eval).
4. Quality (scripts.bench_quality): the previous and the new `lite` recipe and the low-latency
   one, each trained for the same CPU budget, plus noisy, `noisereduce` and the shipped
   checkpoints, on held-out sets.

`make bench` then runs scripts.bench_export (the quantized exports) and scripts.bench_dnsmos
(DNSMOS on ../shared/data/noisy_only, which has no clean references, for the same systems).

Writes build/bench/results.json and prints Markdown tables. Times are from this machine at this
moment (shared, noisy): compare the ratios within one run, not absolute numbers across runs.

    python -m scripts.bench [--budget-minutes 30] [--data DIR] [--contenders lite lite-v2 ...]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from common.audio import istft, stft
from common.config import LossConfig, StftConfig
from common.enhance import load_model
from common.losses import EnhancementLoss
from common.models import build_model, count_parameters, model_names
from common.onnx_stream import OnnxStreamStep, export_streaming_onnx
from common.recipes import load_recipe
from common.run import model_settings
from common.streaming import StreamingEnhancer, algorithmic_latency_ms
from scripts import bench_enhance, bench_quality
from scripts.bench_eval import time_evaluation

SR = 16000
LOW_LATENCY_RECIPE = "lite-v2-low-latency"


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


def streaming_hop_ms(model: object, cfg: StftConfig, hops: int = 2000) -> tuple[float, float]:
    """Median and 99th percentile of one hop through `StreamingEnhancer`, in ms."""
    streamer = StreamingEnhancer(model, cfg)
    hop = np.random.default_rng(0).standard_normal(cfg.hop_length).astype(np.float32) * 0.1
    times = []
    with torch.no_grad():
        for _ in range(hops):
            start = time.perf_counter()
            streamer.process(hop)
            times.append((time.perf_counter() - start) * 1000)
    times = np.array(times[100:])
    return float(np.median(times)), float(np.percentile(times, 99))


def stream_speed(label: str, model: torch.nn.Module, cfg: StftConfig, work: Path) -> dict:
    """Size and per-hop compute of a causal model, in PyTorch and as a streaming ONNX export."""
    onnx = export_streaming_onnx(model, cfg, work / f"{label.replace(' ', '_')}.stream.onnx")
    torch_p50, torch_p99 = streaming_hop_ms(model, cfg)
    onnx_p50, onnx_p99 = streaming_hop_ms(OnnxStreamStep(onnx), cfg)
    return {
        "label": label,
        "params": count_parameters(model),
        "gmacs_per_s": macs_per_second(model, cfg) / 1e9,
        "stft": cfg.to_dict(),
        "window_ms": cfg.window_ms,
        "hop_ms": 1000 * cfg.hop_length / cfg.sample_rate,
        "torch_hop_ms": [torch_p50, torch_p99],
        "onnx_hop_ms": [onnx_p50, onnx_p99],
        "total_latency_ms": algorithmic_latency_ms(cfg) + onnx_p99,
    }


def shipped_speed(shipped: list[Path], low_latency_recipe: str, work: Path) -> list[dict]:
    rows = []
    for ckpt in shipped:
        model, cfg = load_model(ckpt)
        rows.append(stream_speed(ckpt.name, model, cfg, work))
    recipe = load_recipe(low_latency_recipe)
    model = build_model(recipe.model.name, **model_settings(recipe)).eval()
    rows.append(stream_speed(f"recipe {low_latency_recipe}", model, recipe.stft, work))
    return rows


def stream_table(rows: list[dict]) -> str:
    lines = [
        "\n| model | params | G MACs/s | window / hop ms | hop compute p50 / p99 ms, PyTorch "
        "| same, ONNX stream | total latency ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, o = r["torch_hop_ms"], r["onnx_hop_ms"]
        lines.append(
            f"| {r['label']} | {r['params']:,} | {r['gmacs_per_s']:.3f} | {r['window_ms']:g} / "
            f"{r['hop_ms']:g} | {t[0]:.2f} / {t[1]:.2f} | {o[0]:.2f} / {o[1]:.2f} | "
            f"{r['total_latency_ms']:.1f} |"
        )
    lines.append("total latency: window (no look-ahead) + the ONNX stream's per-hop p99")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = bench_quality.bench_parser(__doc__)
    ap.add_argument("--train-steps", type=int, default=2, help="timed steps per model")
    bench_quality.add_training_options(ap)
    ap.add_argument("--low-latency", default=LOW_LATENCY_RECIPE, metavar="RECIPE")
    args = ap.parse_args(argv)
    shipped = bench_quality.shipped_checkpoints()
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
        rows.append(row)
        print(f"{name}: {json.dumps(row)}", flush=True)
    dpt = next(r for r in rows if r["model"] == "dpt")
    lite = next(r for r in rows if r["model"] == "lite")
    ratios = {
        "lite_vs_dpt_train_throughput": lite["train_clips_per_s"] / dpt["train_clips_per_s"],
        "lite_vs_dpt_rtf": dpt["rtf_1thread"] / lite["rtf_1thread"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    streams = shipped_speed(shipped, args.low_latency, args.out)
    results: dict = {"speed": rows, "ratios": ratios, "streaming": streams}
    have_data = (args.data / "speech").is_dir()
    if have_data:
        if shipped:
            results["enhance_folder"] = bench_enhance.bench_enhance(
                shipped[-1], args.data, args.out / "enhance"
            )
        results["evaluation_105_pairs"] = time_evaluation(args.data)
        # Training runs in subprocesses; scoring enhances the test sets on every core.
        torch.set_num_threads(os.cpu_count() or 1)
        results["quality"] = bench_quality.run(
            args.data, args.out, args.budget_minutes, shipped, args.contenders, args.jobs,
            args.retrain,
        )  # fmt: skip
    else:
        print(f"evaluation and quality skipped: {args.data}/speech is missing (set --data)")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))

    print("\n| model | params | G MACs/s | RTF (1 thread) | train 3 s clips/s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']:,} | {r['gmacs_per_s']:.3f} | {r['rtf_1thread']:.4f} | "
            f"{r['train_clips_per_s']:.2f} |"
        )
    print(
        f"\nlite vs dpt: training throughput x{ratios['lite_vs_dpt_train_throughput']:.1f}, "
        f"offline speed x{ratios['lite_vs_dpt_rtf']:.1f}"
    )
    print(stream_table(streams))
    if "enhance_folder" in results:
        print(bench_enhance.markdown(results["enhance_folder"]))
    for r in results.get("evaluation_105_pairs", []):
        print(
            f"evaluate_pairs, {r['files']} pairs ({r['signals']}), {r['workers']} worker(s): "
            f"{r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU"
        )
    if "quality" in results:
        q = results["quality"]
        print(f"\nquality after {q['budget_minutes']:g} CPU minutes of training per recipe:")
        print(bench_quality.markdown(q["sets"], q["trained"]))
    print(f"\nwrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

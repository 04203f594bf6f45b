"""Deployment benchmark: PyTorch fp32 / PyTorch dynamic int8 / ONNX fp32 / ONNX int8.

For each variant: file size, real-time factor on ONE CPU thread, and PESQ / STOI / SI-SDR on the
same clean/noisy pairs, with the mean per-file change against the fp32 PyTorch model. The int8
ONNX model may lose at most 0.05 PESQ; the script exits 1 when it loses more.

    .venv/bin/python -m scripts.bench_export [--ckpt CKPT (default: the shipped one)] \
        [--pairs DIR ...] [--data ../shared/data] [--out build/bench_export.md]

`--pairs` folders hold noisy/ + clean/ (or Kaggle's test/ + y_test/); the default is every
folder under DATA/pairs.
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.audio import SAMPLE_RATE, load_audio
from common.checkpoint import SHIPPED_CHECKPOINT
from common.enhance import Enhancer, TorchBackend, load_model
from common.errors import UserError, exit_status
from common.export import export_onnx, quantize_torch_int8
from common.onnx_backend import load_onnx_enhancer
from common.pairs import discover_pairs, find_pair_dirs

REPO = Path(__file__).resolve().parents[1]
INT8_PESQ_BUDGET = 0.05


def torch_model_bytes(model: nn.Module) -> int:
    """Size of the model's state dict as `torch.save` writes it."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


@dataclass
class VariantResult:
    name: str
    size_bytes: int
    rtf: float
    metrics: dict[str, float]  # mean over the pairs
    vs_fp32: dict[str, float]  # mean per-file difference to the fp32 PyTorch model


def real_time_factor(
    enhance: Callable[[np.ndarray, int], np.ndarray], wavs: Sequence[np.ndarray], sr: int
) -> float:
    """Processing time / audio duration over `wavs` (after one warm-up call)."""
    enhance(wavs[0][: sr // 2], sr)
    start = time.perf_counter()
    for w in wavs:
        enhance(w, sr)
    return (time.perf_counter() - start) / (sum(len(w) for w in wavs) / sr)


def benchmark_variants(
    ckpt: str | Path,
    pairs: Sequence[object],
    work_dir: str | Path,
    sr: int = SAMPLE_RATE,
) -> list[VariantResult]:
    """PyTorch fp32 / PyTorch dynamic int8 / ONNX fp32 / ONNX int8 on the same clean/noisy pairs
    (objects with `noisy` and `clean` paths), all on one CPU thread."""
    from common.metrics import score

    if not pairs:
        raise UserError("benchmark needs at least one clean/noisy pair; check the pairs folder")
    work_dir = Path(work_dir)
    model, stft_cfg = load_model(ckpt)
    onnx_fp32 = export_onnx(model, stft_cfg, work_dir / "model_fp32.onnx")
    onnx_int8 = export_onnx(model, stft_cfg, work_dir / "model_int8.onnx", int8=True)
    torch_int8 = quantize_torch_int8(model)
    variants = {
        "pytorch fp32": (Enhancer(TorchBackend(model, stft_cfg)), torch_model_bytes(model)),
        "pytorch int8 (dynamic)": (
            Enhancer(TorchBackend(torch_int8, stft_cfg)),
            torch_model_bytes(torch_int8),
        ),
        "onnx fp32": (load_onnx_enhancer(onnx_fp32), onnx_fp32.stat().st_size),
        "onnx int8": (load_onnx_enhancer(onnx_int8), onnx_int8.stat().st_size),
    }
    cleans = [load_audio(p.clean, sr) for p in pairs]
    noisys = [load_audio(p.noisy, sr) for p in pairs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_file: dict[str, list[dict[str, float]]] = {}
        results = []
        for name, (enhancer, size) in variants.items():
            rtf = real_time_factor(enhancer.enhance, noisys, sr)
            per_file[name] = [score(c, enhancer.enhance(n, sr), sr) for c, n in zip(cleans, noisys)]
            results.append(VariantResult(name, size, rtf, {}, {}))
    finally:
        torch.set_num_threads(threads)
    reference = per_file["pytorch fp32"]
    for r in results:
        rows = per_file[r.name]
        for m in rows[0]:
            vals = np.array([row[m] for row in rows], dtype=np.float64)
            diffs = vals - np.array([row[m] for row in reference], dtype=np.float64)
            r.metrics[m] = float(np.mean(vals))
            r.vs_fp32[m] = float(np.mean(diffs))
    return results


def format_variant_table(results: Sequence[VariantResult], n_pairs: int | None = None) -> str:
    """Markdown table of a benchmark (size, RTF, metrics and their change vs PyTorch fp32)."""
    lines = [
        "| variant | size (KB) | RTF (1 thread) | PESQ | ΔPESQ | STOI | ΔSTOI | SI-SDR (dB) | ΔSI-SDR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m, d = r.metrics, r.vs_fp32
        lines.append(
            f"| {r.name} | {r.size_bytes / 1024:.0f} | {r.rtf:.4f} | {m['pesq']:.3f} | "
            f"{d['pesq']:+.3f} | {m['stoi']:.3f} | {d['stoi']:+.4f} | {m['si_sdr']:.2f} | "
            f"{d['si_sdr']:+.2f} |"
        )
    if n_pairs is not None:
        lines.append(f"\n{n_pairs} pairs; Δ = mean per-file difference to PyTorch fp32.")
    return "\n".join(lines)


def pair_folders(data: Path) -> list[Path]:
    """The folders of real pairs under `data`/pairs (each with noisy/ and clean/)."""
    return sorted(p for p in (data / "pairs").glob("*") if p.is_dir())


def pairs_of(folders: list[Path]) -> list:
    """The pairs of all `folders`, each named FOLDER/FILE so that names stay unique."""
    pairs = []
    for folder in folders:
        noisy, clean = find_pair_dirs(folder)
        for p in discover_pairs(noisy, clean):
            pairs.append(type(p)(f"{folder.name}/{p.name}", p.noisy, p.clean))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, default=REPO / SHIPPED_CHECKPOINT)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--pairs", type=Path, nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench_export.md")
    args = parser.parse_args(argv)
    return exit_status(lambda: bench(args.ckpt, args.data, args.pairs, args.out))


def bench(ckpt: Path, data: Path, pair_dirs: list[Path] | None, out: Path) -> int:
    """Measure every variant, write and print the table; 0 when int8 stays in its PESQ budget."""
    if not ckpt.is_file():
        raise UserError(
            f"{ckpt}: checkpoint not found; train one (python -m common train) or pass --ckpt"
        )
    folders = pair_dirs or pair_folders(data)
    if not folders:
        raise UserError(f"{data / 'pairs'}: no pair folders; pass --pairs or --data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bench prints a table, not loader chatter
        pairs = pairs_of(folders)
        results = benchmark_variants(ckpt, pairs, out.parent / "bench_export")
    table = format_variant_table(results, len(pairs))
    int8_loss = -next(r for r in results if r.name == "onnx int8").vs_fp32["pesq"]
    verdict = "OK" if int8_loss <= INT8_PESQ_BUDGET else "TOO MUCH"
    text = (
        f"# Quantization and export: {ckpt.name}\n\n{table}\n\n"
        f"ONNX int8 PESQ loss vs PyTorch fp32: {int8_loss:+.3f} (budget {INT8_PESQ_BUDGET}): "
        f"{verdict}\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    raise SystemExit(main())

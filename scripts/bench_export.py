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
import sys
import warnings
from pathlib import Path

from common.checkpoint import SHIPPED_CHECKPOINT
from common.data import discover_pairs, find_pair_dirs
from common.errors import UserError
from common.export import benchmark_variants, format_variant_table

REPO = Path(__file__).resolve().parents[1]
INT8_PESQ_BUDGET = 0.05


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
    try:
        if not args.ckpt.is_file():
            raise UserError(
                f"{args.ckpt}: checkpoint not found; train one (python -m common train) or pass --ckpt"
            )
        folders = args.pairs or pair_folders(args.data)
        if not folders:
            raise UserError(f"{args.data / 'pairs'}: no pair folders; pass --pairs or --data")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the bench prints a table, not loader chatter
            pairs = pairs_of(folders)
            results = benchmark_variants(args.ckpt, pairs, args.out.parent / "bench_export")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_variant_table(results, len(pairs))
    int8_loss = -next(r for r in results if r.name == "onnx int8").vs_fp32["pesq"]
    verdict = "OK" if int8_loss <= INT8_PESQ_BUDGET else "TOO MUCH"
    text = (
        f"# Quantization and export: {args.ckpt.name}\n\n{table}\n\n"
        f"ONNX int8 PESQ loss vs PyTorch fp32: {int8_loss:+.3f} (budget {INT8_PESQ_BUDGET}): "
        f"{verdict}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`enhance` on a folder of 30 minutes of speech, as a user runs it: one thread, start-up included.

The folder is made of links to speech files of ../shared/data (nothing is copied), the command is
`python -m common enhance` in a fresh process (imports, model loading, reading, writing all
count), once with the checkpoint (PyTorch) and once with its ONNX export (onnxruntime).

    python -m scripts.bench_enhance [--ckpt CKPT (default: the shipped one)] [--minutes 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import soundfile as sf

from common.audio import list_audio
from common.checkpoint import SHIPPED_CHECKPOINT


def speech_folder(data: Path, out: Path, minutes: float) -> tuple[Path, float]:
    """`out` holding links to the first speech files of `data` that add up to `minutes`."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i, path in enumerate(list_audio(data / "speech")):
        if total >= 60 * minutes:
            break
        link = out / f"{i:04d}_{path.name}"
        if not link.is_symlink():
            link.symlink_to(path.resolve())
        total += sf.info(str(path)).duration
    return out, total


def time_enhance(model_args: list[str], folder: Path, out: Path) -> float:
    """Wall seconds of one `python -m common enhance` run on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "common", "enhance", *model_args, str(folder), str(out)]
    start = time.perf_counter()
    subprocess.run([*cmd, "--overwrite", "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def bench_enhance(ckpt: Path, data: Path, work: Path, minutes: float = 30.0) -> dict:
    folder, seconds = speech_folder(data, work / f"speech{minutes:g}min", minutes)
    onnx = work / f"{ckpt.stem}.onnx"
    subprocess.run(
        [sys.executable, "-m", "common", "export", "--ckpt", str(ckpt), "--out", str(onnx),
         "--overwrite"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    rows = {}
    for label, args in (
        ("PyTorch (--ckpt)", ["--ckpt", str(ckpt)]),
        ("onnxruntime (--onnx)", ["--onnx", str(onnx)]),
    ):
        wall = time_enhance(args, folder, work / "enhanced")
        rows[label] = {"wall_s": wall, "rtf": wall / seconds}
    return {
        "ckpt": str(ckpt),
        "audio_seconds": seconds,
        "files": len(list_audio(folder)),
        "runs": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"\n`enhance` on {result['files']} files, {result['audio_seconds'] / 60:.1f} min of speech, "
        f"one thread, start-up included ({Path(result['ckpt']).name}):\n",
        "| back-end | wall s | RTF |",
        "|---|---:|---:|",
    ]
    for label, r in result["runs"].items():
        lines.append(f"| {label} | {r['wall_s']:.1f} | {r['rtf']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_enhance", description=__doc__)
    ap.add_argument("--ckpt", type=Path, default=SHIPPED_CHECKPOINT)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--work", type=Path, default=Path("build/bench/enhance"))
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args(argv)
    if not (args.data / "speech").is_dir():
        print(f"enhance timing skipped: {args.data}/speech is missing (set --data)")
        return 0
    print(markdown(bench_enhance(args.ckpt, args.data, args.work, args.minutes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

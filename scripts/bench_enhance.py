"""`enhance` on folders as a user runs it: one thread, start-up included.

Two folders: 30 minutes of speech (links to the speech files of ../shared/data, nothing copied)
and 800 short noisy utterances of 2-4 s, the common case of a test set (mixed from the speech
and noise of ../shared/data into build/, the same files on every run). The command is
`python -m common enhance` in a fresh process (imports, model loading, reading, writing all
count), with the checkpoint (PyTorch) and with its ONNX export (onnxruntime), each run
`--repeats` times: the median wall time gives the RTF, and the child's CPU seconds (user +
system) are printed beside it, as the wall time of a shared machine includes its other work.

    python -m scripts.bench_enhance [--ckpt CKPT (default: the shipped one)] [--minutes 30]
        [--short-files 800] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from common.audio import SAMPLE_RATE, list_audio, load_audio, write_audio
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


def short_folder(
    data: Path,
    out: Path,
    n_files: int = 800,
    seconds: tuple[float, float] = (2.0, 4.0),
    seed: int = 0,
) -> tuple[Path, float]:
    """`out` holding `n_files` noisy utterances of 2-4 s (16 kHz mono, 16-bit WAV): crops of the
    speech files of `data` in turn, each mixed with a crop of a noise file at 0-15 dB SNR.

    The same files for the same arguments (a seeded generator over sorted file lists); a folder
    already made with the same arguments is reused (its `made-with.txt` says how it was made).
    """
    from common.mixing import mix_at_snr

    stamp = f"{n_files} files, {seconds[0]:g}-{seconds[1]:g} s, seed {seed}, from {data.resolve()}"
    done = out / "made-with.txt"
    if done.is_file() and done.read_text().strip() == stamp:
        return out, sum(sf.info(str(p)).duration for p in list_audio(out))
    speech, noise = list_audio(data / "speech"), list_audio(data / "noise")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    noises: dict[Path, np.ndarray] = {}
    total, written, attempt = 0.0, 0, 0
    while written < n_files:
        src = speech[(attempt * 7919) % len(speech)]  # spread over the corpora, not the first few
        attempt += 1
        wav = load_audio(src)
        frames = int(rng.uniform(*seconds) * SAMPLE_RATE)
        start = int(rng.integers(max(1, len(wav) - frames)))
        clean = wav[start : start + frames]
        npath = noise[int(rng.integers(len(noise)))]
        if npath not in noises:
            noises[npath] = load_audio(npath)
        nz = noises[npath]
        offset = int(rng.integers(len(nz)))
        nz = np.tile(nz, -(-(offset + len(clean)) // len(nz)))[offset : offset + len(clean)]
        snr, level = float(rng.uniform(0.0, 15.0)), float(rng.uniform(-35.0, -15.0))
        if len(clean) < seconds[0] * SAMPLE_RATE or min(np.std(clean), np.std(nz)) < 1e-4:
            continue  # a speech file shorter than the crop, or silence: the next file instead
        noisy, _, _ = mix_at_snr(clean, nz, snr, level)
        write_audio(out / f"{written:04d}_{src.stem}.wav", noisy)
        total += len(noisy) / SAMPLE_RATE
        written += 1
    done.write_text(stamp + "\n")
    return out, total


def time_enhance(model_args: list[str], folder: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `python -m common enhance` run on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "common", "enhance", *model_args, str(folder), str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*cmd, "--overwrite", "--no-progress"], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def bench_enhance(
    ckpt: Path,
    data: Path,
    work: Path,
    minutes: float = 30.0,
    short_files: int = 800,
    repeats: int = 3,
) -> dict:
    folders = [speech_folder(data, work / f"speech{minutes:g}min", minutes)] if minutes else []
    if short_files:
        folders.append(short_folder(data, work / f"short{short_files}", short_files))
    onnx = work / f"{ckpt.stem}.onnx"
    subprocess.run(
        [sys.executable, "-m", "common", "export", "--ckpt", str(ckpt), "--out", str(onnx),
         "--overwrite"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    backends = (
        ("PyTorch (--ckpt)", ["--ckpt", str(ckpt)]),
        ("onnxruntime (--onnx)", ["--onnx", str(onnx)]),
    )
    rows = []
    for folder, seconds in folders:
        for label, args in backends:
            times = [
                time_enhance(args, folder, work / "enhanced" / folder.name) for _ in range(repeats)
            ]
            wall = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            rows.append(
                {
                    "folder": folder.name,
                    "files": len(list_audio(folder)),
                    "audio_seconds": seconds,
                    "backend": label,
                    "wall_s": wall,
                    "rtf": wall / seconds,
                    "cpu_s": cpu,
                    "cpu_rtf": cpu / seconds,
                    "walls": [t[0] for t in times],
                }
            )
    return {"ckpt": str(ckpt), "repeats": repeats, "rows": rows}


def markdown(result: dict) -> str:
    lines = [
        f"\n`enhance` on folders, one thread, start-up included ({Path(result['ckpt']).name}; "
        f"median of {result['repeats']} fresh runs):\n",
        "| folder | files | audio min | back-end | wall s | RTF | CPU s | CPU RTF |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['folder']} | {r['files']} | {r['audio_seconds'] / 60:.1f} | {r['backend']} | "
            f"{r['wall_s']:.1f} | {r['rtf']:.4f} | {r['cpu_s']:.1f} | {r['cpu_rtf']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_enhance", description=__doc__)
    ap.add_argument("--ckpt", type=Path, default=SHIPPED_CHECKPOINT)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--work", type=Path, default=Path("build/bench/enhance"))
    ap.add_argument(
        "--minutes", type=float, default=30.0, help="the long folder's length (0: none)"
    )
    ap.add_argument(
        "--short-files", type=int, default=800, help="files of 2-4 s in the short folder (0: none)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="fresh runs per folder and back-end")
    args = ap.parse_args(argv)
    if not (args.data / "speech").is_dir():
        print(f"enhance timing skipped: {args.data}/speech is missing (set --data)")
        return 0
    result = bench_enhance(
        args.ckpt, args.data, args.work, args.minutes, args.short_files, args.repeats
    )
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

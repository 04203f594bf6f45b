"""Benchmark `common.evaluation.evaluate_pairs`: 105 pairs of 3 s (the Kaggle test-set count).

Builds the pairs from real speech and noise in ../shared/data (written as FLAC to a temp folder,
so file loading is part of the time), then times the serial and the parallel path, noisy-only
and noisy + enhanced. The "enhanced" files are the same speech at a higher SNR: only the cost
matters here, not the scores. Target: under 10 s for 105 pairs on a 2-core machine.

    .venv/bin/python -m scripts.bench_eval [--data ../shared/data] [--files 105] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from common.audio import list_audio, load_audio, write_audio
from common.evaluation import EvalItem, eval_worker_count, evaluate_pairs

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    # This process plus finished children (the pool's workers have exited when the call returns).
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(speech**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
    mix = speech + gain * noise
    return (mix / max(1.0, float(np.max(np.abs(mix))) / 0.99)).astype(np.float32)


def make_bench_pairs(data: Path, out: Path, n_files: int, seconds: float) -> list[EvalItem]:
    """`n_files` clean/noisy/enhanced FLAC triples of `seconds` each under `out`."""
    rng = np.random.default_rng(0)
    frames = int(seconds * 16000)
    speech = [p for p in list_audio(data / "speech") if "librispeech" in p.parts]
    noise = list_audio(data / "noise" / "moodist")
    items = []
    for i in range(n_files):
        clean = load_audio(speech[i % len(speech)])
        clean = np.pad(clean, (0, max(0, frames - len(clean))))[:frames]
        noise_wav = load_audio(noise[i % len(noise)])[:frames]
        noise_wav = np.resize(noise_wav, frames)
        paths = {}
        for role, wav in (
            ("clean", clean),
            ("noisy", _mix(clean, noise_wav, rng.uniform(0, 10))),
            ("enhanced", _mix(clean, noise_wav, rng.uniform(15, 25))),
        ):
            paths[role] = write_audio(out / role / f"bench_{i:03d}.flac", wav)
        items.append(EvalItem(f"bench_{i:03d}.flac", **paths))
    return items


def time_evaluation(data: Path, n_files: int = 105, seconds: float = 3.0) -> list[dict]:
    """Wall and CPU seconds of `evaluate_pairs`, serial and parallel, noisy-only and with outputs."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        items = make_bench_pairs(data, Path(tmp), n_files, seconds)
        noisy_only = [EvalItem(i.name, i.clean, i.noisy) for i in items]
        parallel = eval_worker_count(None, len(items))
        for label, batch in (("noisy", noisy_only), ("noisy + enhanced", items)):
            for workers in dict.fromkeys((1, parallel)):
                start, cpu_start = time.perf_counter(), _cpu_seconds()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = evaluate_pairs(batch, workers=workers, progress=False)
                took, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
                rows.append(
                    {
                        "signals": label,
                        "files": len(batch),
                        "workers": workers,
                        "wall_s": took,
                        "cpu_s": cpu,
                        "failures": len(result.summary["failures"]),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--files", type=int, default=105)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if not (args.data / "speech").is_dir():
        print(f"error: {args.data}: no speech/ folder; pass --data with the shared audio")
        return 2
    print(
        f"{args.files} pairs of {args.seconds:g} s, {os.cpu_count()} CPUs visible, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows = time_evaluation(args.data, args.files, args.seconds)
    # Wall time depends on what else runs on the machine; CPU seconds show the work itself.
    print(f"{'signals':<18}{'workers':>8}{'wall s':>8}{'ms/file':>9}{'CPU s':>8}  failures")
    for r in rows:
        print(
            f"{r['signals']:<18}{r['workers']:>8}{r['wall_s']:>8.2f}"
            f"{1000 * r['wall_s'] / r['files']:>9.1f}{r['cpu_s']:>8.2f}  {r['failures']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

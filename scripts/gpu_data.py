"""Carry a corpus's training split to a GPU machine that has room for only part of it.

    python -m scripts.gpu_data pack --data ../shared/data --out .devdata [--seed 0]
    python -m scripts.gpu_data unpack --src .devdata --out /tmp/data

`pack` takes the *training* split of `--data` (speakers and noise recordings as
`common.corpus.real_corpus_splits` assigns them here, non-commercial files left out) and stores
each file as Ogg Vorbis (about a third of the FLAC's size) with MANIFEST.csv's rows for them.
`unpack` decodes them back to 16 kHz FLAC under the same relative paths. The GPU run then splits
what it has again (80/10/10), so none of this machine's validation or test speakers and noises is
ever trained on, and the checkpoint it brings back can be scored here on the held-out sets.
Vorbis changes the waveform (about 24 dB SNR at quality 0.5 for speech) but not its bandwidth:
noisy input and clean target are mixed from the same decoded speech.
"""

from __future__ import annotations

import argparse
import csv
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

from common.atomic import atomic_write
from common.audio import SAMPLE_RATE, load_audio
from common.corpus import real_corpus_splits
from common.errors import UserError, exit_status

QUALITY = {"speech": 0.5, "noise": 0.3}  # Vorbis quality 0..1; noise tolerates more loss


def _encode(job: tuple[Path, Path, float]) -> int:
    src, dst, quality = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    wav = load_audio(src, SAMPLE_RATE)
    with atomic_write(dst, "wb") as raw:
        with sf.SoundFile(
            raw, "w", SAMPLE_RATE, 1, format="OGG", subtype="VORBIS", compression_level=1 - quality
        ) as f:
            f.write(wav)
    return dst.stat().st_size


def _decode(job: tuple[Path, Path]) -> None:
    src, dst = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    wav, sr = sf.read(src, dtype="float32")
    with atomic_write(dst, "wb") as raw:
        sf.write(raw, wav, sr, format="FLAC", subtype="PCM_16")


def pack(data: Path, out: Path, seed: int, jobs: int) -> None:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: not empty; choose a new --out or remove it first")
    train = real_corpus_splits(data, seed, exclude_noncommercial=True)["train"]
    work = [
        (p, out / p.relative_to(data).with_suffix(".ogg"), QUALITY[kind])
        for kind, files in (("speech", train.speech), ("noise", train.noise))
        for p in files
    ]
    with ProcessPoolExecutor(jobs) as pool:
        size = sum(pool.map(_encode, work, chunksize=8))
    manifest = data / "MANIFEST.csv"
    if manifest.is_file():  # speakers and licences, for the split and the filter over there
        rels = {p.relative_to(data).as_posix() for p, _, _ in work}
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if r.get("path") in rels]
            fields = reader.fieldnames or []
        with open(out / "MANIFEST.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    before = sum(p.stat().st_size for p, _, _ in work)
    print(
        f"{out}: {len(train.speech)} speech + {len(train.noise)} noise files of the training "
        f"split, {before / 1e6:.1f} MB FLAC -> {size / 1e6:.1f} MB Vorbis"
    )


def unpack(src: Path, out: Path, jobs: int) -> None:
    files = sorted(src.rglob("*.ogg"))
    if not files:
        raise UserError(f"{src}: no .ogg files; run `python -m scripts.gpu_data pack` first")
    work = [(p, out / p.relative_to(src).with_suffix(".flac")) for p in files]
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_decode, work, chunksize=8))
    manifest = src / "MANIFEST.csv"
    if manifest.is_file():
        (out / "MANIFEST.csv").write_bytes(manifest.read_bytes())
    print(f"{out}: {len(work)} files decoded to FLAC")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.gpu_data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="the training split as Vorbis")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="the recipes' data split seed")
    u = sub.add_parser("unpack", help="back to FLAC")
    u.add_argument("--src", type=Path, required=True)
    u.add_argument("--out", type=Path, required=True)
    for s in (p, u):
        s.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    def run_command() -> None:
        if args.cmd == "pack":
            pack(args.data, args.out, args.seed, args.jobs)
        else:
            unpack(args.src, args.out, args.jobs)

    return exit_status(run_command)


if __name__ == "__main__":
    raise SystemExit(main())

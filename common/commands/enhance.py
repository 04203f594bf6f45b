"""`python -m common enhance --ckpt CKPT IN OUT`: enhance a WAV/FLAC file or a folder of them.

Each output has the sample rate, length, channel count and sample format of its input (the
model runs at its own rate; audio is resampled there and back). Channels are enhanced
separately, so a stereo file stays stereo. A folder is mirrored into OUT with relative paths.
"""

from __future__ import annotations

import argparse

from common.enhance import enhance_path, load_enhancer


def run_enhance(args: argparse.Namespace) -> int:
    enhancer = load_enhancer(
        args.ckpt,
        "cpu" if args.device == "cpu" else None,
        expect_model=args.model,
        chunk_seconds=args.chunk_seconds,
    )
    written = enhance_path(enhancer, args.input, args.output, progress=not args.no_progress)
    where = written[0] if len(written) == 1 else args.output
    print(
        f"enhanced {len(written)} file(s) with {enhancer.model_name} on {enhancer.device}: {where}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enhance",
        help="enhance audio files with a checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ckpt", required=True, help="best.pt / last.pt written by `train`")
    p.add_argument("input", metavar="IN", help="a WAV/FLAC file or a folder of them")
    p.add_argument("output", metavar="OUT", help="output file (for a file IN) or folder")
    p.add_argument("--model", default=None, help="refuse checkpoints of any other model")
    p.add_argument("--chunk-seconds", type=float, default=30.0, help="longer audio is chunked")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_enhance)

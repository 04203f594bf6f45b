"""`python -m common enhance --ckpt CKPT IN OUT`: enhance a WAV/FLAC file or a folder of them.

Each output has the sample rate, length, channel count and sample format of its input (the
model runs at its own rate; audio is resampled there and back). Channels are enhanced
separately, so a stereo file stays stereo. A folder is mirrored into OUT with relative paths.
"""

from __future__ import annotations

import argparse

from common.enhance import enhance_path
from common.errors import UserError


def _make_enhancer(args: argparse.Namespace):
    if bool(args.ckpt) == bool(args.onnx):
        raise UserError("enhance: give exactly one of --ckpt CKPT or --onnx MODEL.onnx")
    if args.onnx:
        # numpy + onnxruntime + the STFT only: no model code is imported on this path.
        from common.export import OnnxEnhancer

        return OnnxEnhancer(args.onnx)
    if args.streaming:
        from common.export import model_from_checkpoint
        from common.streaming import StreamingFileEnhancer

        model, stft_cfg = model_from_checkpoint(args.ckpt)
        return StreamingFileEnhancer(model, stft_cfg)
    from common.enhance import load_enhancer

    return load_enhancer(
        args.ckpt,
        "cpu" if args.device == "cpu" else None,
        expect_model=args.model,
        chunk_seconds=args.chunk_seconds,
    )


def run_enhance(args: argparse.Namespace) -> int:
    enhancer = _make_enhancer(args)
    if args.vad:
        from common.vad import GateConfig, VadGatedEnhancer

        enhancer = VadGatedEnhancer(
            enhancer, GateConfig(floor_db=args.vad_floor_db, fade_ms=args.vad_fade_ms)
        )
    written = enhance_path(enhancer, args.input, args.output, progress=not args.no_progress)
    where = written[0] if len(written) == 1 else args.output
    name = getattr(enhancer, "model_name", "model")
    device = getattr(enhancer, "device", "cpu")
    print(f"enhanced {len(written)} file(s) with {name} on {device}: {where}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enhance",
        help="enhance audio files with a checkpoint",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ckpt", help="best.pt / last.pt written by `train`")
    p.add_argument("--onnx", help="a model exported by `python -m common export` (fp32 or int8)")
    p.add_argument(
        "--streaming",
        action="store_true",
        help="run the causal model frame by frame (one hop in, one hop out), as a stream would",
    )
    p.add_argument("--vad", action="store_true", help="attenuate non-speech regions (Silero VAD)")
    p.add_argument("--vad-floor-db", type=float, default=-20.0, help="gain in non-speech regions")
    p.add_argument("--vad-fade-ms", type=float, default=60.0, help="fade length at region edges")
    p.add_argument("input", metavar="IN", help="a WAV/FLAC file or a folder of them")
    p.add_argument("output", metavar="OUT", help="output file (for a file IN) or folder")
    p.add_argument("--model", default=None, help="refuse checkpoints of any other model")
    p.add_argument("--chunk-seconds", type=float, default=30.0, help="longer audio is chunked")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_enhance)

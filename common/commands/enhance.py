"""`python -m common enhance --ckpt CKPT IN OUT`: enhance a WAV/FLAC file or a folder of them.

Each output has the sample rate, length, channel count and sample format of its input (the
model runs at its own rate; audio is resampled there and back). Channels are enhanced
separately, so a stereo file stays stereo. A folder is mirrored into OUT with relative paths.

Your files are safe: outputs are written under a temporary name and renamed when complete;
an existing output is kept unless --overwrite is given; with OUT inside IN, nothing in OUT is
read as input. In a folder, a file that cannot be enhanced is named and the others are still
written; the command then exits with status 2.
"""

from __future__ import annotations

import argparse

from common.checks import path_arg
from common.cli import add_command
from common.config import GateConfig
from common.enhance import (
    DEFAULT_CHUNK_SECONDS,
    MAX_CHUNK_SECONDS,
    MIN_CHUNK_SECONDS,
    check_chunk_seconds,
)
from common.enhance_files import enhance_path
from common.errors import UserError

VAD_FLOOR_DB, VAD_FADE_MS = GateConfig.floor_db, GateConfig.fade_ms


def _make_enhancer(args: argparse.Namespace):
    if bool(args.ckpt) == bool(args.onnx):
        raise UserError("enhance: give exactly one of --ckpt CKPT or --onnx MODEL.onnx")
    check_chunk_seconds(args.chunk_seconds)  # before any model is loaded
    if args.onnx:
        if args.streaming:
            raise UserError("--streaming needs --ckpt: an ONNX graph has no frame-by-frame state")
        # onnxruntime and the shared waveform path only: no model code is imported here.
        from common.onnx_backend import load_onnx_enhancer

        return load_onnx_enhancer(args.onnx, chunk_seconds=args.chunk_seconds)
    if args.streaming:
        from common.enhance import Enhancer, load_model
        from common.streaming import StreamingBackend

        model, stft_cfg = load_model(args.ckpt, expect_model=args.model)
        return Enhancer(StreamingBackend(model, stft_cfg), args.chunk_seconds)
    from common.enhance import load_enhancer

    return load_enhancer(
        args.ckpt,
        "cpu" if args.device == "cpu" else None,
        expect_model=args.model,
        chunk_seconds=args.chunk_seconds,
    )


def run_enhance(args: argparse.Namespace) -> int:
    gate = None
    given = (args.vad_floor_db, args.vad_fade_ms) != (VAD_FLOOR_DB, VAD_FADE_MS)
    if args.vad or given:  # checked before any model is loaded, and even when unused
        gate = GateConfig(floor_db=args.vad_floor_db, fade_ms=args.vad_fade_ms)
    if not args.vad:
        gate = None
    enhancer = _make_enhancer(args)
    if gate is not None:
        from common.vad_gate import VadGatedEnhancer

        enhancer = VadGatedEnhancer(enhancer, gate)
    run = enhance_path(
        enhancer,
        args.input,
        args.output,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    where = run.written[0] if len(run.written) == 1 else args.output
    kept = f"; kept {len(run.kept)} existing (--overwrite replaces them)" if run.kept else ""
    print(
        f"enhanced {len(run.written)} file(s) with {enhancer.model_name} on {enhancer.device}: "
        f"{where}{kept}"
    )
    if run.skipped:
        reasons: dict[str, int] = {}
        for _, reason in run.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        print(
            f"skipped {len(run.skipped)} file(s) in {args.input}: "
            + "; ".join(f"{n} {reason}" for reason, n in reasons.items())
        )
    if run.failed:
        names = ", ".join(str(path) for path, _ in run.failed[:5])
        more = f" and {len(run.failed) - 5} more" if len(run.failed) > 5 else ""
        raise UserError(
            f"{len(run.failed)} file(s) could not be enhanced ({names}{more}; reasons above); "
            f"written: {len(run.written)} other file(s), into {args.output}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "enhance", __doc__)
    p.add_argument("--ckpt", type=path_arg, help="best.pt / last.pt written by `train`")
    p.add_argument(
        "--onnx", type=path_arg, help="a model exported by `python -m common export` (fp32 or int8)"
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="run the causal model one frame at a time with its state, as a stream does "
        "(the same output as without it, to float rounding)",
    )
    p.add_argument("--vad", action="store_true", help="attenuate non-speech regions (Silero VAD)")
    p.add_argument(
        "--vad-floor-db", type=float, default=VAD_FLOOR_DB, help="gain in non-speech regions"
    )
    p.add_argument(
        "--vad-fade-ms", type=float, default=VAD_FADE_MS, help="fade length at region edges"
    )
    p.add_argument("input", type=path_arg, metavar="IN", help="a WAV/FLAC file or a folder of them")
    p.add_argument(
        "output", type=path_arg, metavar="OUT", help="output file (for a file IN) or folder"
    )
    p.add_argument("--model", default=None, help="refuse checkpoints of any other model")
    p.add_argument(
        "--chunk-seconds",
        type=float,
        default=DEFAULT_CHUNK_SECONDS,
        help=f"longer audio is processed in chunks of this many seconds ({MIN_CHUNK_SECONDS:g} to "
        f"{MAX_CHUNK_SECONDS:g}; only bounds memory: the output is the same for any chunk size "
        "with a causal model, PyTorch or ONNX)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing output files (default: keep)"
    )
    p.add_argument("--device", choices=("auto", "cpu"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_enhance)

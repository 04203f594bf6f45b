"""`python -m common export --ckpt CKPT --out MODEL.onnx [--int8 | --streaming]`: a checkpoint as ONNX.

The file holds the network only (STFT/ISTFT stay outside, in numpy) plus its STFT config and
model name as metadata, so `python -m common enhance --onnx MODEL.onnx` needs no model code.
`--streaming` writes the causal model's one-frame step with its state instead, for real-time
streaming (`common.onnx_stream.load_onnx_stream`), about three times faster per hop than PyTorch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.checks import path_arg
from common.cli import add_command
from common.errors import UserError


def _run_export(args: argparse.Namespace) -> int:
    from common.enhance import load_model
    from common.enhance_files import prepare_output_folder
    from common.export import ONNX_OPSET, check_opset, export_onnx
    from common.models import count_parameters
    from common.onnx_backend import OnnxBackend

    opset = check_opset(ONNX_OPSET if args.opset is None else args.opset)  # before any tracing
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"--out {out}: use a file name ending in .onnx")
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: exists; pass --overwrite to replace it, or choose another --out")
    prepare_output_folder(out)  # an unwritable --out fails before the checkpoint is read
    model, stft_cfg = load_model(args.ckpt)
    if args.streaming:
        from common.onnx_stream import export_streaming_onnx, load_onnx_stream

        if args.int8:
            raise UserError("--streaming exports fp32 only; drop --int8")
        export_streaming_onnx(model, stft_cfg, out, opset=opset)
        stream = load_onnx_stream(out)
        print(
            f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, streaming, fp32): model "
            f"{stream.model.name}, {count_parameters(model):,} parameters, one frame of "
            f"{stft_cfg.hop_length} samples per call, {stream.latency_samples + stft_cfg.hop_length}"
            f" samples of latency"
        )
        print(f"stream with it: common.onnx_stream.load_onnx_stream({str(out)!r}).process(hop)")
        return 0
    export_onnx(model, stft_cfg, out, int8=args.int8, opset=opset)
    loaded = OnnxBackend(out)  # proves the file loads and carries its metadata
    print(
        f"wrote {out} ({out.stat().st_size / 1024:.0f} KB, {loaded.precision}): model "
        f"{loaded.model_name}, {count_parameters(model):,} parameters, STFT n_fft="
        f"{stft_cfg.n_fft} hop={stft_cfg.hop_length} window={stft_cfg.window}"
    )
    print(f"run it: python -m common enhance --onnx {out} IN OUT")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "export", __doc__)
    p.add_argument(
        "--ckpt",
        type=path_arg,
        required=True,
        help="checkpoint written by `python -m common train`",
    )
    p.add_argument("--out", type=path_arg, required=True, help="the .onnx file to write")
    p.add_argument(
        "--int8",
        action="store_true",
        help="quantize weights to int8 (onnxruntime dynamic quantization)",
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="export the causal model's one-frame step with its state (real-time streaming)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 9 to 20 (default 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_run_export)

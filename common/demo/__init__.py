"""Gradio demo: upload or record audio, enhance it with the PyTorch or the ONNX int8 model,
optionally gate non-speech with the VAD, and see spectrograms, the VAD timeline, the processing
time and, given a clean reference, PESQ / STOI / SI-SDR.

`python -m common.demo [--ckpt checkpoints/lite-v2.pt]` serves it on 127.0.0.1 and prints the
URL. `DemoEngine` is the part without a UI (tested directly); `build_demo_app` wraps it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the demo renders figures to PNG in server threads

import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf

from common.audio import SAMPLE_RATE, resample, to_mono, write_audio
from common.checkpoint import SHIPPED_CHECKPOINT
from common.checks import (
    MAX_PORT,
    OneLineArgumentParser,
    SettingError,
    number,
    path_arg,
    port_arg,
    text,
)
from common.config import GateConfig
from common.enhance import Enhancer, TorchBackend, load_model
from common.errors import UserError
from common.export import export_onnx
from common.metrics import MetricError, score
from common.models import count_parameters
from common.onnx_backend import load_onnx_enhancer
from common.plots import plot_spectrograms, plot_vad
from common.vad import detect_speech
from common.vad_gate import apply_vad_gate, gate_gain

DEMO_MODELS = ("PyTorch (fp32)", "ONNX int8")
DEMO_DEFAULT_CKPT = SHIPPED_CHECKPOINT
MAX_DEMO_SECONDS = 3600.0  # longest upload the demo takes
# The demo's options and the DemoConfig fields they set: an error about a field names the option.
DEMO_FLAGS = {"--host": "demo.host", "--port": "demo.port", "--max-seconds": "demo.max_seconds"}


@dataclass
class DemoConfig:
    ckpt: Path = DEMO_DEFAULT_CKPT
    onnx: Path | None = None  # default: exported from the checkpoint into work_dir
    host: str = "127.0.0.1"
    port: int = 7860
    max_seconds: float = 300.0
    work_dir: Path = Path("build") / "demo"

    def __post_init__(self) -> None:
        text("demo.host", self.host)
        number("demo.port", self.port, 1, MAX_PORT, whole=True)
        number("demo.max_seconds", self.max_seconds, 0, MAX_DEMO_SECONDS, lo_open=True)


@dataclass
class DemoResult:
    enhanced_path: Path
    sample_rate: int
    n_samples: int
    seconds: float  # processing time of the model (VAD and plots excluded)
    rtf: float
    speech_fraction: float
    spectrogram_png: Path
    vad_png: Path
    metrics: dict[str, dict[str, float]] | None = None  # {"noisy": {...}, "enhanced": {...}}
    notes: list[str] = field(default_factory=list)

    def summary_markdown(self, model: str, gated: bool) -> str:
        lines = [
            f"**{model}**{' + VAD gate' if gated else ''}: {self.n_samples / self.sample_rate:.2f} s "
            f"of audio at {self.sample_rate} Hz in {self.seconds * 1000:.0f} ms, "
            f"real-time factor **{self.rtf:.3f}** ({1 / max(self.rtf, 1e-9):.0f}x faster than "
            f"real time). VAD: {self.speech_fraction:.0%} speech.",
        ]
        if self.metrics:
            lines += [
                "",
                "| | PESQ | STOI | SI-SDR (dB) |",
                "|---|---:|---:|---:|",
            ]
            for signal in ("noisy", "enhanced"):
                m = self.metrics[signal]
                lines.append(
                    f"| {signal} | {m['pesq']:.2f} | {m['stoi']:.3f} | {m['si_sdr']:.2f} |"
                )
        lines += [f"\n_{note}_" for note in self.notes]
        return "\n".join(lines)


def read_demo_audio(path: str | Path | None, max_seconds: float, what: str = "audio") -> tuple:
    """(mono float32 samples, sample rate) of an uploaded file, or a one-line UserError."""
    if path is None:
        raise UserError(f"no {what}: upload a file or record one with the microphone")
    path = Path(path)
    name = path.name
    if not path.is_file() or path.stat().st_size == 0:
        raise UserError(f"{name}: the file is empty; upload a recording")
    try:
        info = sf.info(str(path))
    except Exception:
        raise UserError(
            f"{name}: not an audio file this demo can read; use WAV, FLAC, OGG or MP3"
        ) from None
    if info.frames <= 0:
        raise UserError(f"{name}: contains no samples; upload a recording")
    duration = info.frames / info.samplerate
    if duration > max_seconds:
        raise UserError(
            f"{name}: {duration / 60:.1f} minutes long; the demo takes up to "
            f"{max_seconds / 60:.0f} minutes, trim it"
        )
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(f"{name}: cannot be decoded ({reason}); re-export it as WAV") from None
    wav = to_mono(wav)
    if not np.all(np.isfinite(wav)):
        raise UserError(f"{name}: contains NaN/infinite samples; the file is corrupt")
    if len(wav) < sr // 10:
        raise UserError(f"{name}: only {len(wav) / sr * 1000:.0f} ms long; use at least 0.1 s")
    peak = float(np.max(np.abs(wav)))
    if peak == 0.0:
        raise UserError(f"{name}: is pure silence; upload a recording with sound in it")
    if peak > 1.0:
        wav = wav * (0.99 / peak)
    return wav.astype(np.float32), int(sr)


class DemoEngine:
    """Models and processing behind the page (no UI)."""

    def __init__(self, cfg: DemoConfig) -> None:
        self.cfg = cfg
        if not Path(cfg.ckpt).is_file():
            raise UserError(
                f"{cfg.ckpt}: checkpoint not found; train one with `python -m common train` "
                f"(or pull the shipped {SHIPPED_CHECKPOINT}) or pass --ckpt PATH"
            )
        model, stft_cfg = load_model(cfg.ckpt)
        self.model_name = getattr(model, "name", type(model).__name__)
        self.n_params = count_parameters(model)
        self.work_dir = Path(cfg.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        onnx_path = Path(cfg.onnx) if cfg.onnx else self._exported_int8(model, stft_cfg)
        self.enhancers = {
            DEMO_MODELS[0]: Enhancer(TorchBackend(model, stft_cfg)),
            DEMO_MODELS[1]: load_onnx_enhancer(onnx_path),
        }

    def _exported_int8(self, model, stft_cfg) -> Path:
        # Re-exported only when the checkpoint is newer than the cached file.
        path = self.work_dir / f"{Path(self.cfg.ckpt).stem}-int8.onnx"
        if not path.is_file() or path.stat().st_mtime < Path(self.cfg.ckpt).stat().st_mtime:
            print(f"exporting the ONNX int8 model to {path} ...", flush=True)
            export_onnx(model, stft_cfg, path, int8=True)
        return path

    def process(
        self,
        noisy_path: str | Path | None,
        clean_path: str | Path | None = None,
        model: str = DEMO_MODELS[0],
        use_vad: bool = False,
        floor_db: float = -20.0,
    ) -> DemoResult:
        if model not in self.enhancers:
            raise UserError(f"model {model!r}: choose one of {', '.join(self.enhancers)}")
        noisy, sr = read_demo_audio(noisy_path, self.cfg.max_seconds, "noisy audio")
        enhancer = self.enhancers[model]
        start = time.perf_counter()
        enhanced = enhancer.enhance(noisy, sr)
        seconds = time.perf_counter() - start
        gate = GateConfig(floor_db=floor_db)
        if use_vad:
            enhanced, vad = apply_vad_gate(enhanced, sr, gate, reference=noisy)
        else:
            vad = detect_speech(enhanced, sr, gate.vad, union_with=(noisy,))
        out_dir = Path(tempfile.mkdtemp(prefix="request-", dir=self.work_dir))
        stem = Path(noisy_path).stem[:60] or "audio"
        enhanced_path = write_audio(out_dir / f"{stem}_enhanced.wav", enhanced, sr)
        notes: list[str] = []
        metrics = None
        if clean_path is not None:
            metrics, note = self._metrics(clean_path, noisy, enhanced, sr)
            notes += [note] if note else []
        spec_png, vad_png = out_dir / "spectrograms.png", out_dir / "vad.png"
        view = {"noisy": noisy, "enhanced": enhanced}
        plt.close(plot_spectrograms(view, sr, path=spec_png))
        plt.close(
            plot_vad(view, vad, sr, gain=gate_gain(vad, gate) if use_vad else None, path=vad_png)
        )
        return DemoResult(
            enhanced_path,
            sr,
            len(enhanced),
            seconds,
            seconds / (len(noisy) / sr),
            vad.speech_fraction,
            spec_png,
            vad_png,
            metrics,
            notes,
        )

    def _metrics(
        self, clean_path: str | Path, noisy: np.ndarray, enhanced: np.ndarray, sr: int
    ) -> tuple[dict | None, str | None]:
        clean, clean_sr = read_demo_audio(clean_path, self.cfg.max_seconds, "clean reference")
        to16 = [
            resample(x, r, SAMPLE_RATE) for x, r in ((clean, clean_sr), (noisy, sr), (enhanced, sr))
        ]
        n = min(len(x) for x in to16)
        longest = max(len(x) for x in to16)
        note = None
        if longest - n > 0.01 * longest:
            note = (
                f"the clean reference and the noisy audio differ in length ({len(to16[0]) / 16000:.2f} s "
                f"vs {len(to16[1]) / 16000:.2f} s); scored on the first {n / 16000:.2f} s"
            )
        clean16, noisy16, enh16 = (x[:n] for x in to16)
        try:
            metrics = {"noisy": score(clean16, noisy16), "enhanced": score(clean16, enh16)}
        except MetricError as exc:
            return None, f"metrics could not be computed: {exc}"
        if not all(math.isfinite(v) for m in metrics.values() for v in m.values()):
            return None, "metrics could not be computed (not finite)"
        return metrics, note


def build_demo_app(engine: DemoEngine):
    """The Gradio page around `engine`."""
    import gradio as gr

    def run(noisy, clean, model, use_vad, floor_db):
        try:
            result = engine.process(noisy, clean, model, bool(use_vad), float(floor_db))
        except UserError as exc:
            return f"**error:** {exc}", None, "", None, None
        return (
            "done",
            str(result.enhanced_path),
            result.summary_markdown(model, bool(use_vad)),
            str(result.spectrogram_png),
            str(result.vad_png),
        )

    with gr.Blocks(title="Speech enhancement demo") as app:
        gr.Markdown(
            f"## Speech enhancement demo\nModel **{engine.model_name}** "
            f"({engine.n_params:,} parameters) from `{engine.cfg.ckpt}`. Upload or record audio "
            f"(WAV, FLAC, OGG, MP3; any sample rate, mono or stereo; up to "
            f"{engine.cfg.max_seconds / 60:.0f} minutes)."
        )
        with gr.Row():
            with gr.Column():
                noisy = gr.Audio(
                    sources=["upload", "microphone"],
                    type="filepath",
                    label="noisy audio",
                    elem_id="noisy-input",
                )
                clean = gr.Audio(
                    sources=["upload"],
                    type="filepath",
                    label="clean reference (optional: for PESQ / STOI / SI-SDR)",
                    elem_id="clean-input",
                )
                model = gr.Radio(list(DEMO_MODELS), value=DEMO_MODELS[0], label="model")
                use_vad = gr.Checkbox(False, label="VAD gating: attenuate non-speech")
                floor_db = gr.Slider(-40, 0, value=-20, step=1, label="VAD floor (dB)")
                button = gr.Button("Enhance", variant="primary", elem_id="enhance-btn")
            with gr.Column():
                status = gr.Markdown("upload a file, then press Enhance", elem_id="status")
                enhanced = gr.Audio(
                    type="filepath",
                    label="enhanced audio",
                    interactive=False,
                    buttons=["download"],
                    elem_id="enhanced-output",
                )
                summary = gr.Markdown(elem_id="summary")
        spectrograms = gr.Image(type="filepath", label="spectrograms", elem_id="spectrograms")
        vad_plot = gr.Image(type="filepath", label="VAD timeline", elem_id="vad-plot")
        button.click(
            run,
            inputs=[noisy, clean, model, use_vad, floor_db],
            outputs=[status, enhanced, summary, spectrograms, vad_plot],
        )
    return app


def check_port_free(host: str, port: int) -> None:
    """A one-line UserError when `host:port` cannot be listened on (another server holds it)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"--port {port}: {host}:{port} is not free ({exc.strerror or exc}); stop the "
                f"program using it or pass another port, e.g. --port {port + 1}"
            ) from None


def _path(text_value: str) -> Path:
    return Path(path_arg(text_value))


def demo_parser() -> argparse.ArgumentParser:
    """The demo's command line (one `error:` line for a mistake, as `python -m common`)."""
    parser = OneLineArgumentParser(
        prog="python -m common.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--ckpt", type=_path, default=DEMO_DEFAULT_CKPT)
    parser.add_argument(
        "--onnx", type=_path, default=None, help="int8 ONNX model (default: export)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port_arg, default=7860, help="1 to 65535")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help=f"longest audio accepted (up to {MAX_DEMO_SECONDS:g})",
    )
    parser.add_argument("--work-dir", type=_path, default=Path("build") / "demo")
    return parser


def demo_main(argv: list[str] | None = None) -> int:
    parser = demo_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    try:
        cfg = DemoConfig(
            args.ckpt, args.onnx, args.host, args.port, args.max_seconds, args.work_dir
        )
    except SettingError as exc:
        flags = {field: option for option, field in DEMO_FLAGS.items()}
        print(
            f"error: {exc.named(flags[exc.field]) if exc.field in flags else exc}", file=sys.stderr
        )
        return 2
    try:
        check_port_free(cfg.host, cfg.port)  # before minutes of loading and exporting
        engine = DemoEngine(cfg)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import gradio as gr

    app = build_demo_app(engine)
    # System fonts only: the default theme fetches Google Fonts, unreachable offline.
    theme = gr.themes.Default(font=["Helvetica", "Arial", "sans-serif"], font_mono=["monospace"])
    try:
        _, url, _ = app.launch(
            server_name=cfg.host,
            server_port=cfg.port,
            prevent_thread_lock=True,
            quiet=True,
            allowed_paths=[str(Path(cfg.work_dir).resolve())],
            theme=theme,
            footer_links=[],
        )
    except OSError as exc:  # the port was taken after the check
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"error: {cfg.host}:{cfg.port}: cannot serve there ({reason})", file=sys.stderr)
        return 2
    print(f"demo running at {url} (Ctrl+C to stop)", flush=True)
    try:
        app.block_thread()
    except KeyboardInterrupt:
        pass
    return 0

"""The demo's upload handling (no browser): any rate, stereo, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from common.demo import DemoConfig, DemoEngine, read_demo_audio
from common.errors import UserError


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_reads_common_formats_stereo_any_rate(tmp_path: Path, suffix: str):
    path = tmp_path / f"stereo{suffix}"
    sf.write(str(path), _tone(1.0, 44100, channels=2), 44100)
    wav, sr = read_demo_audio(path, max_seconds=300)
    assert sr == 44100 and wav.ndim == 1 and wav.dtype == np.float32
    assert abs(len(wav) - 44100) < 2000  # mp3 adds encoder padding


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_text("hello " * 100), "not an audio file this demo can read"),
        (lambda p: sf.write(str(p), np.zeros(16000), 16000), "pure silence"),
        (lambda p: sf.write(str(p), _tone(0.05, 16000), 16000), "use at least 0.1 s"),
        (lambda p: sf.write(str(p), _tone(3.0, 8000), 8000), "up to 0 minutes, trim it"),
    ],
    ids=["empty", "not-audio", "silence", "too-short", "too-long"],
)
def test_bad_uploads_are_refused_in_one_line(tmp_path: Path, make, message):
    path = tmp_path / "upload.wav"
    make(path)
    max_seconds = 2.0 if "minutes" in message else 300.0
    with pytest.raises(UserError, match=message) as info:
        read_demo_audio(path, max_seconds)
    assert "\n" not in str(info.value) and "upload.wav" in str(info.value)


def test_no_upload_says_what_to_do():
    with pytest.raises(UserError, match="no noisy audio: upload a file or record"):
        read_demo_audio(None, 300, "noisy audio")


def test_missing_checkpoint_says_how_to_get_one(tmp_path: Path):
    with pytest.raises(UserError, match="nope.pt: checkpoint not found.*--ckpt"):
        DemoEngine(DemoConfig(ckpt=tmp_path / "nope.pt", work_dir=tmp_path))


def test_a_port_in_use_is_one_line(tmp_path: Path):
    """`python -m common.demo --port P` while another program listens on P."""
    import socket
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "common.demo", "--port", str(port), "--work-dir", str(tmp_path)],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --port {port}:"), proc.stderr
    assert "--port" in lines[0].split(";")[-1]  # says what to do

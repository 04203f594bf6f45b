"""`enhance --onnx` on a long file equals `--ckpt` and an unchunked run, for any chunk size: the
exported graph of a causal model carries its state from one run of frames to the next (issue 21:
before, each 30 s chunk restarted the GRUs from zero and differed by up to 0.13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ONE_THREAD, run_common

from common.audio import SAMPLE_RATE, list_audio, load_audio
from common.checkpoint import SHIPPED_CHECKPOINT
from common.enhance import DEFAULT_CHUNK_SECONDS

LONG_SECONDS = 75  # longer than two default chunks
SHORT_CHUNK = 10.0
TOLERANCE = 2e-4  # float rounding of onnxruntime against PyTorch


def _long_noisy_file(shared_data: Path, out: Path) -> Path:
    """LONG_SECONDS of real speech (clips one after another) with real noise at about 5 dB."""
    n = LONG_SECONDS * SAMPLE_RATE
    speech, noise = [], []
    for clip in list_audio(shared_data / "speech"):
        speech.append(load_audio(clip))
        if sum(map(len, speech)) >= n:
            break
    for clip in list_audio(shared_data / "noise"):
        noise.append(load_audio(clip))
        if sum(map(len, noise)) >= n:
            break
    s, v = np.concatenate(speech)[:n], np.concatenate(noise)
    v = np.resize(v, n)
    v *= np.sqrt(np.mean(s**2) / (np.mean(v**2) + 1e-12)) * 10 ** (-5 / 20)
    mix = s + v
    mix *= 0.9 / np.abs(mix).max()
    sf.write(str(out), mix.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
    return out


def _cli(*args: str) -> None:
    proc = run_common(*args, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_onnx_equals_ckpt_on_a_long_file_for_any_chunk_size(shared_data, tmp_path):
    noisy = _long_noisy_file(shared_data, tmp_path / "long.wav")
    assert sf.info(str(noisy)).duration == LONG_SECONDS
    onnx = tmp_path / "lite.onnx"
    _cli("export", "--ckpt", str(SHIPPED_CHECKPOINT), "--out", str(onnx))
    runs = {
        "ckpt": ["--ckpt", str(SHIPPED_CHECKPOINT), "--device", "cpu"],
        "onnx": ["--onnx", str(onnx)],
        "onnx_short_chunks": ["--onnx", str(onnx), "--chunk-seconds", str(SHORT_CHUNK)],
        # One chunk longer than the file: the unchunked result.
        "onnx_unchunked": ["--onnx", str(onnx), "--chunk-seconds", str(float(LONG_SECONDS + 1))],
    }
    out = {}
    for name, args in runs.items():
        path = tmp_path / f"{name}.wav"
        _cli("enhance", *args, "--no-progress", str(noisy), str(path))
        out[name] = sf.read(str(path), dtype="float32")[0]
    assert LONG_SECONDS > 2 * DEFAULT_CHUNK_SECONDS
    for name in ("onnx", "onnx_short_chunks", "onnx_unchunked"):
        err = float(np.abs(out[name] - out["ckpt"]).max())
        assert err < TOLERANCE, f"{name} differs from --ckpt by {err:.2e}"

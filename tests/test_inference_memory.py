"""Peak memory of `enhance --onnx` on a 10-minute file (it once held the whole spectrum: 4.8 GB).

The short check that the ONNX back-end is fed in chunks is in test_export.py; this one measures
the command a user runs, in a child process, with `resource.getrusage(RUSAGE_CHILDREN)`.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_python

from common.config import StftConfig
from common.export import export_onnx
from common.models import build_model

PEAK_LIMIT_MB = 1500

# Runs the command as its own child, so the peak is that command's and no other test's.
_MEASURE = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); "
    "sys.exit(rc)"
)


def peak_rss_mb(*args: str) -> int:
    """Peak resident memory in MB of `python -m common ARGS` (which must succeed)."""
    proc = run_python("-c", _MEASURE, sys.executable, "-m", "common", *args)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a 10-minute file (about 15 s on 2 cores)
def test_onnx_enhance_of_ten_minutes_stays_under_the_memory_limit(tmp_path):
    torch.manual_seed(0)
    onnx = export_onnx(build_model("lite").eval(), StftConfig(), tmp_path / "lite.onnx")
    sr, seconds = 16000, 600
    rng = np.random.default_rng(0)
    t = np.arange(sr * seconds) / sr
    wav = 0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    wav += 0.05 * rng.standard_normal(wav.shape)
    src = tmp_path / "long.wav"
    sf.write(src, wav.astype(np.float32), sr, subtype="PCM_16")
    del wav, t
    peak = peak_rss_mb(
        "enhance", "--onnx", str(onnx), "--no-progress", str(src), str(tmp_path / "o.wav")
    )
    assert sf.info(tmp_path / "o.wav").frames == sr * seconds
    assert peak < PEAK_LIMIT_MB, f"enhance --onnx peaked at {peak} MB on a 10-minute file"
    print(f"enhance --onnx, 10-minute file: peak RSS {peak} MB")

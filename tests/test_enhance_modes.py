"""`enhance --streaming`, `--vad` and `--onnx` on real noisy-only recordings, through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ONE_THREAD, REPO, run_common
from train_helpers import save_model_checkpoint

from common.cli import main
from common.models import build_model


def _checkpoint(tmp_path):

    torch.manual_seed(0)
    model = build_model("lite")
    return save_model_checkpoint(tmp_path / "lite.pt", model)


@pytest.mark.parametrize("mode", [["--streaming"], ["--vad"], ["--streaming", "--vad"]])
def test_enhance_modes_keep_rate_and_length(shared_data, tmp_path, mode):
    src = sorted((shared_data / "noisy_only").rglob("*.flac"))[0]
    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "out.wav"
    assert main(["enhance", "--ckpt", str(ckpt), *mode, "--no-progress", str(src), str(out)]) == 0
    info_in, info_out = sf.info(str(src)), sf.info(str(out))
    assert (info_out.samplerate, info_out.frames) == (info_in.samplerate, info_in.frames)
    assert np.all(np.isfinite(sf.read(str(out))[0]))


def test_streaming_cli_equals_offline_on_whole_real_files(shared_data, tmp_path):
    """`enhance --streaming` vs `enhance` on every real pair (noisy and clean) as it comes (no
    added silence), whole files through the command line, with lite-dev.pt (shipped before lite-v2.pt). Before
    the offline path padded causal models as a stream does, they differed by up to 0.059."""
    ckpt = REPO / "checkpoints" / "lite-dev.pt"
    src = shared_data / "pairs"
    outs = {}
    for label, mode in (("offline", []), ("streaming", ["--streaming"])):
        outs[label] = tmp_path / label
        cmd = ["enhance", "--ckpt", str(ckpt), "--device", "cpu", *mode, "--no-progress"]
        proc = run_common(*cmd, str(src), str(outs[label]), env=ONE_THREAD)
        assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(outs["offline"]) for p in outs["offline"].rglob("*.flac"))
    assert len(files) >= 20  # 10 pairs
    worst = 0.0
    for rel in files:
        a = sf.read(str(outs["offline"] / rel))[0]
        b = sf.read(str(outs["streaming"] / rel))[0]
        assert a.shape == b.shape == (sf.info(str(src / rel)).frames,)
        worst = max(worst, float(np.max(np.abs(a - b))))
    assert worst <= 1e-4, f"streaming differs from offline by {worst:.2e}"


def test_enhance_needs_exactly_one_model(tmp_path, capsys):
    assert main(["enhance", str(tmp_path / "x.wav"), str(tmp_path / "y.wav")]) == 2
    assert "exactly one of --ckpt" in capsys.readouterr().err


def test_streaming_needs_a_checkpoint_not_an_onnx_graph(tmp_path, capsys):
    argv = ["enhance", "--onnx", str(tmp_path / "m.onnx"), "--streaming", "IN", "OUT"]
    assert main(argv) == 2
    assert "--streaming needs --ckpt" in capsys.readouterr().err

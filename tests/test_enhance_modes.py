"""`enhance --streaming`, `--vad` and `--onnx` on real noisy-only recordings, through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from common.audio import StftConfig
from common.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from common.cli import main
from common.models import build_model


def _checkpoint(tmp_path):
    from common.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("lite")
    cfg = StftConfig()
    state = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "model_name": "lite",
        "model_config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(model.cfg).items()
        },
        "stft": cfg.to_dict(),
        "model": model.state_dict(),
    }
    return save_checkpoint(tmp_path / "lite.pt", state)


@pytest.mark.parametrize("mode", [["--streaming"], ["--vad"], ["--streaming", "--vad"]])
def test_enhance_modes_keep_rate_and_length(shared_data, tmp_path, mode):
    src = sorted((shared_data / "noisy_only").rglob("*.flac"))[0]
    ckpt = _checkpoint(tmp_path)
    out = tmp_path / "out.wav"
    assert main(["enhance", "--ckpt", str(ckpt), *mode, "--no-progress", str(src), str(out)]) == 0
    info_in, info_out = sf.info(str(src)), sf.info(str(out))
    assert (info_out.samplerate, info_out.frames) == (info_in.samplerate, info_in.frames)
    assert np.all(np.isfinite(sf.read(str(out))[0]))


def test_streaming_cli_matches_offline(shared_data, tmp_path):
    src = sorted((shared_data / "noisy_only").rglob("*.flac"))[0]
    ckpt = _checkpoint(tmp_path)
    assert (
        main(["enhance", "--ckpt", str(ckpt), "--no-progress", str(src), str(tmp_path / "a.wav")])
        == 0
    )
    assert (
        main(
            [
                "enhance",
                "--ckpt",
                str(ckpt),
                "--streaming",
                "--no-progress",
                str(src),
                str(tmp_path / "b.wav"),
            ]
        )
        == 0
    )
    a, b = sf.read(str(tmp_path / "a.wav"))[0], sf.read(str(tmp_path / "b.wav"))[0]
    # Only the edges differ: the offline STFT mirrors samples past both ends that a stream cannot see.
    assert np.max(np.abs(a[4000:-4000] - b[4000:-4000])) < 2e-3


def test_enhance_needs_exactly_one_model(tmp_path, capsys):
    assert main(["enhance", str(tmp_path / "x.wav"), str(tmp_path / "y.wav")]) == 2
    assert "exactly one of --ckpt" in capsys.readouterr().err

"""`enhance`: rate/length/channels round trip, chunking without seams, refusing foreign checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_common
from train_helpers import ToyLoss, ToySpeechSet

from common.checkpoint import load_checkpoint, save_checkpoint
from common.config import StftConfig, TrainConfig
from common.enhance import Enhancer, TorchBackend, load_enhancer, load_model
from common.enhance_files import enhance_path
from common.errors import UserError
from common.models import build_model
from common.train import Trainer

SMALL_LITE = {"width": 16, "enc_channels": 8, "time_hidden": 16, "n_blocks": 1}


@pytest.fixture(scope="module")
def lite_ckpt(tmp_path_factory):
    """A checkpoint of a small `lite` written by the trainer (two steps of training)."""
    out = tmp_path_factory.mktemp("lite")
    torch.manual_seed(0)
    trainer = Trainer(
        build_model("lite", **SMALL_LITE),
        ToyLoss(),
        ToySpeechSet(8, length=4096),
        None,
        TrainConfig(epochs=1, batch_size=4, num_workers=0, progress=False),
        StftConfig(),
        out,
    )
    trainer.fit()
    return out / "last.pt"


def _tone(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(sr)
    wav = np.stack(
        [
            0.3 * np.sin(2 * np.pi * (220 + 50 * c) * t) + 0.02 * rng.standard_normal(len(t))
            for c in range(channels)
        ],
        axis=1,
    )
    return wav[:, 0] if channels == 1 else wav


@pytest.mark.parametrize(
    "name,sr,channels,subtype",
    [
        ("phone.wav", 8000, 1, "PCM_16"),
        ("cd.flac", 44100, 1, "PCM_24"),
        ("stereo.wav", 44100, 2, "PCM_16"),
        ("odd.wav", 22050, 1, "FLOAT"),
    ],
)
def test_output_keeps_rate_length_channels_and_format(
    tmp_path, lite_ckpt, name, sr, channels, subtype
):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    sf.write(src, _tone(sr, 1.37, channels), sr, subtype=subtype)
    enhancer = load_enhancer(lite_ckpt, "cpu")
    (dst,) = enhance_path(enhancer, src, tmp_path / "out" / name, progress=False).written
    src_info, dst_info = sf.info(src), sf.info(dst)
    assert (dst_info.samplerate, dst_info.frames, dst_info.channels, dst_info.subtype) == (
        src_info.samplerate,
        src_info.frames,
        src_info.channels,
        src_info.subtype,
    )
    out = sf.read(dst)[0]
    assert np.all(np.isfinite(out)) and np.abs(out).max() > 0


def test_folder_is_mirrored(tmp_path, lite_ckpt):
    for rel in ("a.wav", "sub/b.flac"):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "in" / rel, _tone(16000, 0.5), 16000)
    written = enhance_path(
        load_enhancer(lite_ckpt, "cpu"), tmp_path / "in", tmp_path / "out", progress=False
    ).written
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "a.wav",
        "sub/b.flac",
    ]
    with pytest.raises(UserError, match="output folder is the input folder"):
        enhance_path(load_enhancer(lite_ckpt, "cpu"), tmp_path / "in", tmp_path / "in")


class _PassThrough:
    """A stateless back-end that returns its input; records the longest spectrum it was given."""

    stft = StftConfig()
    model_name, device, causal, carries_state = "identity", "cpu", False, False

    def __init__(self) -> None:
        self.longest = 0

    def reset(self) -> None:
        pass

    def __call__(self, spec):
        self.longest = max(self.longest, spec.shape[-1])
        return spec


def test_chunked_processing_has_no_seams_and_bounds_each_call():
    # With a pass-through back-end the output must equal the input, chunk boundaries included.
    backend = _PassThrough()
    enhancer = Enhancer(backend, chunk_seconds=1.0, overlap_seconds=0.05)
    wav = _tone(16000, 3.5, channels=2).astype(np.float32)
    out = enhancer.enhance(wav, 16000)
    assert out.shape == wav.shape
    np.testing.assert_allclose(out, wav, atol=1e-5)
    assert backend.longest <= 1 + 16000 // 256 + 2  # one chunk of frames, never the whole file


def test_resampling_round_trip_preserves_the_signal():
    enhancer = Enhancer(_PassThrough())
    wav = _tone(8000, 1.0).astype(np.float32)
    out = enhancer.enhance(wav, 8000)
    assert np.corrcoef(wav[100:-100], out[100:-100])[0, 1] > 0.999


def test_a_causal_model_in_runs_of_frames_equals_one_pass(lite_ckpt):
    # A back-end that carries its state is fed a long spectrum in pieces: exact, not cross-faded.
    model, cfg = load_model(lite_ckpt)
    wav = _tone(16000, 3.3, channels=2).astype(np.float32)
    whole = Enhancer(TorchBackend(model, cfg), chunk_seconds=30).enhance(wav, 16000)
    pieces = Enhancer(TorchBackend(model, cfg), chunk_seconds=1).enhance(wav, 16000)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_stereo_stays_stereo_with_each_channel_its_own(lite_ckpt):
    enhancer = load_enhancer(lite_ckpt, "cpu")
    stereo = _tone(16000, 1.0, channels=2).astype(np.float32)
    out = enhancer.enhance(stereo, 16000)
    assert out.shape == stereo.shape
    np.testing.assert_allclose(out[:, 1], enhancer.enhance(stereo[:, 1], 16000), atol=1e-5)


@pytest.mark.parametrize("seconds", [float("nan"), 0.0, -5.0, 0.5, float("inf"), 1e5, "30"])
def test_unusable_chunk_lengths_are_refused(seconds):
    with pytest.raises(UserError, match="--chunk-seconds"):
        Enhancer(_PassThrough(), chunk_seconds=seconds)


def _tampered(lite_ckpt, tmp_path, **changes):
    state = load_checkpoint(lite_ckpt)
    state.update(changes)
    return save_checkpoint(tmp_path / "tampered.pt", state)


def test_refuses_checkpoint_of_another_config_in_one_line(tmp_path, lite_ckpt):
    state = load_checkpoint(lite_ckpt)
    bad = _tampered(lite_ckpt, tmp_path, model_config={**state["model_config"], "width": 24})
    with pytest.raises(UserError, match="weights do not fit model 'lite'") as err:
        load_enhancer(bad, "cpu")
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_refuses_checkpoint_of_another_model(tmp_path, lite_ckpt):
    with pytest.raises(UserError, match="checkpoint is for model 'lite', not 'crn'") as err:
        load_enhancer(lite_ckpt, "cpu", expect_model="crn")
    assert "\n" not in str(err.value)
    bad = _tampered(lite_ckpt, tmp_path, model_name="crn")
    with pytest.raises(UserError, match="cannot rebuild|weights do not fit"):
        load_enhancer(bad, "cpu")


def test_refuses_stft_that_does_not_fit_the_model(tmp_path, lite_ckpt):
    state = load_checkpoint(lite_ckpt)
    bad = _tampered(lite_ckpt, tmp_path, stft={**state["stft"], "n_fft": 256})
    with pytest.raises(UserError, match="does not match its STFT"):
        load_enhancer(bad, "cpu")


def test_cli_enhances_and_reports_errors_in_one_line(tmp_path, lite_ckpt):
    src = tmp_path / "x.wav"
    sf.write(src, _tone(16000, 0.5), 16000)
    cmd = ["enhance", "--ckpt", str(lite_ckpt), "--no-progress"]
    ok = run_common(*cmd, str(src), str(tmp_path / "y.wav"))
    assert ok.returncode == 0, ok.stderr
    assert sf.info(tmp_path / "y.wav").frames == sf.info(src).frames
    bad = run_common(*cmd, "--model", "dpt", str(src), str(tmp_path / "z.wav"))
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")

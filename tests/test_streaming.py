"""Streaming `lite`: hop-by-hop output equals the offline path, delayed by a fixed latency,
from the first sample to the last, on signals as they come (no added silence)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import run_common

from common.audio import istft, stft
from common.config import StftConfig
from common.enhance import Enhancer, TorchBackend
from common.errors import UserError
from common.models import build_model
from common.streaming import StreamingBackend, StreamingEnhancer, algorithmic_latency_ms


def offline(model: torch.nn.Module, wav: np.ndarray, cfg: StftConfig) -> np.ndarray:
    """What `enhance` computes for a causal model (the one waveform path, PyTorch back-end)."""
    return Enhancer(TorchBackend(model, cfg)).enhance(wav, cfg.sample_rate)


def synthetic_speech(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 40 * np.sin(2 * math.pi * 1.5 * t)
    voiced = sum(np.sin(2 * math.pi * k * np.cumsum(f0) / sr) / k for k in range(1, 10))
    noise = np.random.default_rng(0).normal(0, 0.02, t.shape)
    return (0.1 * voiced * (0.5 + 0.5 * np.sin(2 * math.pi * 3 * t)) + noise).astype(np.float32)


def random_lite(cfg: StftConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("lite", n_freq=cfg.n_freq)
    # Non-trivial normalisation statistics, as after training.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def assert_stream_matches_offline(wav: np.ndarray, cfg: StftConfig) -> None:
    model = random_lite(cfg)
    ref = offline(model, wav, cfg)
    streamer = StreamingEnhancer(model, cfg)
    delay = streamer.latency_samples
    assert delay == cfg.n_fft - cfg.hop_length
    # Hop by hop, then zeros for as long as the latency, so every sample comes out.
    padded = np.concatenate([wav, np.zeros(delay + cfg.hop_length, np.float32)])
    hops = [
        streamer.process(padded[i : i + cfg.hop_length])
        for i in range(0, len(padded) - cfg.hop_length + 1, cfg.hop_length)
    ]
    out = np.concatenate(hops)
    assert np.all(out[:delay] == 0)
    assert np.abs(ref).max() > 1e-3  # random weights still pass signal through
    np.testing.assert_allclose(out[delay : delay + len(wav)], ref, atol=1e-4)


@pytest.mark.parametrize(
    "cfg", [StftConfig(), StftConfig(n_fft=512, hop_length=128), StftConfig(128, 64)]
)
def test_stream_equals_offline_on_a_synthetic_signal(cfg: StftConfig) -> None:
    assert_stream_matches_offline(synthetic_speech(), cfg)


def test_stream_equals_offline_on_real_speech(speech_clip: np.ndarray) -> None:
    assert_stream_matches_offline(speech_clip[: 2 * 16000], StftConfig())


def test_process_signal_compensates_the_latency_and_reset_starts_over() -> None:
    cfg = StftConfig()
    model = random_lite(cfg)
    wav = synthetic_speech(1.0)
    streamer = StreamingEnhancer(model, cfg)
    first = streamer.process_signal(wav)
    streamer.process(np.ones(cfg.hop_length, np.float32))  # leave some state behind
    again = streamer.process_signal(wav)
    assert first.shape == wav.shape
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, offline(model, wav, cfg), atol=1e-4)


def test_streaming_backend_equals_the_hop_stream_on_whole_real_files(shared_data) -> None:
    """`enhance --streaming` (frame-by-frame back-end) = the hop stream = `enhance`, whole files."""
    from common.audio import list_audio, load_audio

    cfg = StftConfig()
    model = random_lite(cfg)
    for path in list_audio(shared_data / "pairs" / "vbd_train_p287" / "noisy")[:2]:
        wav = load_audio(path)
        frame_by_frame = Enhancer(StreamingBackend(model, cfg)).enhance(wav, 16000)
        hop_stream = StreamingEnhancer(model, cfg).process_signal(wav)
        np.testing.assert_allclose(frame_by_frame, hop_stream, atol=1e-4)
        np.testing.assert_allclose(frame_by_frame, offline(model, wav, cfg), atol=1e-4)


def test_offline_causal_padding_still_reconstructs(speech_clip: np.ndarray) -> None:
    # The stream's zero padding changes what the model sees at the edges, not the STFT's
    # invertibility.
    x = torch.from_numpy(speech_clip[:16000])
    for cfg in (StftConfig(), StftConfig(n_fft=128, hop_length=64)):
        back = istft(stft(x, cfg, pad_mode="constant"), cfg, len(x))
        assert float((back - x).abs().max()) < 1e-5


def test_algorithmic_latency_is_the_window_plus_lookahead() -> None:
    assert algorithmic_latency_ms(StftConfig()) == pytest.approx(32.0)
    assert algorithmic_latency_ms(StftConfig(), lookahead_frames=1) == pytest.approx(48.0)
    assert algorithmic_latency_ms(StftConfig(n_fft=128, hop_length=64)) == pytest.approx(8.0)


def test_models_that_look_ahead_cannot_stream() -> None:
    with pytest.raises(UserError, match="causal=True"):
        StreamingEnhancer(build_model("lite", causal=False), StftConfig())
    with pytest.raises(UserError, match="no streaming mode"):
        StreamingEnhancer(build_model("dpt"), StftConfig())


def test_bad_hops_and_frame_layouts_are_refused() -> None:
    with pytest.raises(UserError, match="hop_length=200"):
        StreamingEnhancer(build_model("lite"), StftConfig(n_fft=512, hop_length=200))
    streamer = StreamingEnhancer(build_model("lite"), StftConfig())
    with pytest.raises(UserError, match="expected exactly hop_length=256"):
        streamer.process(np.zeros(100, np.float32))


def test_streaming_backend_keeps_stereo_with_each_channel_its_own() -> None:
    cfg = StftConfig()
    model = random_lite(cfg)
    left, right = synthetic_speech(0.8), np.roll(synthetic_speech(0.8), 777)
    out = Enhancer(StreamingBackend(model, cfg)).enhance(np.stack([left, right], axis=1), 16000)
    assert out.shape == (len(left), 2)
    mono = Enhancer(StreamingBackend(model, cfg)).enhance(right, 16000)
    np.testing.assert_allclose(out[:, 1], mono, atol=1e-5)


@pytest.mark.parametrize("cfg", [StftConfig(), StftConfig(n_fft=192, hop_length=96)])
def test_the_streaming_onnx_export_equals_the_pytorch_stream(cfg: StftConfig, tmp_path) -> None:
    from train_helpers import save_model_checkpoint

    from common.onnx_stream import load_onnx_stream

    model = random_lite(cfg)
    ckpt = save_model_checkpoint(tmp_path / "lite.pt", model, stft=cfg)
    out = tmp_path / "stream.onnx"
    done = run_common("export", "--ckpt", str(ckpt), "--out", str(out), "--streaming")
    assert done.returncode == 0, done.stderr
    assert "streaming" in done.stdout and out.is_file()
    wav = synthetic_speech(1.0)
    expected = StreamingEnhancer(model, cfg).process_signal(wav)
    stream = load_onnx_stream(out)
    assert stream.latency_samples == cfg.n_fft - cfg.hop_length
    np.testing.assert_allclose(stream.process_signal(wav), expected, atol=1e-5)
    # A stateless export is not a stream; the error names the command that makes one.
    stateless = tmp_path / "offline.onnx"
    offline = run_common("export", "--ckpt", str(ckpt), "--out", str(stateless))
    assert offline.returncode == 0, offline.stderr
    with pytest.raises(UserError, match="not a streaming export.*--streaming"):
        load_onnx_stream(stateless)

"""Streaming `lite`: hop-by-hop output equals the offline forward, delayed by a fixed latency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.audio import StftConfig, istft, stft
from common.errors import UserError
from common.models import build_model
from common.streaming import StreamingEnhancer, algorithmic_latency_ms


def offline(model: torch.nn.Module, wav: np.ndarray, cfg: StftConfig) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(wav)[None]
        return istft(model(stft(x, cfg)), cfg, len(wav))[0].numpy()


def with_leading_silence(wav: np.ndarray, cfg: StftConfig) -> np.ndarray:
    # torch.stft(center=True) reflects the first half window; silence there makes it zeros,
    # which is all a stream can know before the samples arrive (see common.streaming).
    return np.concatenate([np.zeros(cfg.n_fft // 2 + 1, np.float32), wav.astype(np.float32)])


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
    wav = with_leading_silence(wav, cfg)
    ref = offline(model, wav, cfg)
    streamer = StreamingEnhancer(model, cfg)
    hops = [
        streamer.process(wav[i : i + cfg.hop_length])
        for i in range(0, len(wav) - cfg.hop_length + 1, cfg.hop_length)
    ]
    out = np.concatenate(hops)
    delay = streamer.latency_samples
    assert delay == cfg.n_fft - cfg.hop_length
    assert np.all(out[:delay] == 0)
    # The stream has not yet seen the end, which offline reflect-pads: compare what it emitted
    # before the last window.
    n = len(out) - cfg.n_fft
    assert np.abs(ref).max() > 1e-3  # random weights still pass signal through
    np.testing.assert_allclose(out[delay : delay + n], ref[:n], atol=1e-4)


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
    wav = with_leading_silence(synthetic_speech(1.0), cfg)
    streamer = StreamingEnhancer(model, cfg)
    first = streamer.process_signal(wav)
    streamer.process(np.ones(cfg.hop_length, np.float32))  # leave some state behind
    again = streamer.process_signal(wav)
    assert first.shape == wav.shape
    np.testing.assert_array_equal(first, again)
    n = len(wav) - cfg.n_fft
    np.testing.assert_allclose(first[:n], offline(model, wav, cfg)[:n], atol=1e-4)


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

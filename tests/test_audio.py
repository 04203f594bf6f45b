from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from common.audio import (
    AudioError,
    StftConfig,
    istft,
    load_audio,
    read_segment,
    roundtrip_error,
    stft,
    write_audio,
)
from common.errors import UserError


@pytest.mark.parametrize(
    "cfg",
    [
        StftConfig(),
        StftConfig(hop_length=128),
        StftConfig(n_fft=160, hop_length=80, window="sqrt_hann"),
    ],
)
def test_stft_roundtrip_on_real_speech(speech_clip, cfg):
    wav = torch.from_numpy(speech_clip)
    assert roundtrip_error(wav, cfg) < 1e-5


def test_stft_shapes_batch_and_odd_length():
    cfg = StftConfig()
    wav = torch.randn(3, 16001)
    spec = stft(wav, cfg)
    assert spec.shape == (3, 257, 16001 // 256 + 1) and spec.is_complex()
    assert istft(spec, cfg, 16001).shape == (3, 16001)


def test_bad_stft_settings_are_one_line_errors():
    with pytest.raises(UserError, match="window"):
        StftConfig(window="kaiser")
    with pytest.raises(UserError, match="hop_length"):
        StftConfig(hop_length=1024)


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, left], 1), 44100)
    with pytest.warns(UserWarning, match="s.wav"):
        wav = load_audio(tmp_path / "s.wav", warn=True)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) <= 1
    # The tone survives: a real resampler keeps its energy (RMS of 0.5 sine = 0.354).
    assert abs(np.sqrt(np.mean(wav[1000:-1000] ** 2)) - 0.354) < 0.01


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_rates_resampled(tmp_path, rate):
    sf.write(tmp_path / "r.flac", np.zeros(rate, np.float32) + 0.1, rate)
    assert abs(len(load_audio(tmp_path / "r.flac")) - 16000) <= 1


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio" * 10)
    sf.write(
        tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, subtype="FLOAT"
    )
    sf.write(tmp_path / "nosamples.wav", np.zeros(0, np.float32), 16000)
    for name, msg in [
        ("empty.wav", "empty"),
        ("junk.wav", "not a readable"),
        ("nan.wav", "NaN"),
        ("nosamples.wav", "no samples"),
        ("missing.wav", "not found"),
    ]:
        with pytest.raises(AudioError, match=msg) as info:
            load_audio(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_float_file_over_full_scale_is_scaled(tmp_path):
    sf.write(
        tmp_path / "loud.wav", np.array([0.0, 2.0, -1.0] * 100, np.float32), 16000, subtype="FLOAT"
    )
    with pytest.warns(UserWarning, match="peak"):
        wav = load_audio(tmp_path / "loud.wav")
    assert np.max(np.abs(wav)) <= 1.0


def test_read_segment_matches_full_read_and_pads(tmp_path):
    wav = np.random.default_rng(0).uniform(-0.5, 0.5, 20000).astype(np.float32)
    write_audio(tmp_path / "a.wav", wav)
    full = load_audio(tmp_path / "a.wav")
    np.testing.assert_array_equal(read_segment(tmp_path / "a.wav", 5000, 3000), full[5000:8000])
    tail = read_segment(tmp_path / "a.wav", 19000, 3000)
    assert len(tail) == 3000 and np.all(tail[1000:] == 0)
    assert np.all(read_segment(tmp_path / "a.wav", 30000, 100) == 0)


def test_write_refuses_nan(tmp_path):
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "x.wav", np.array([np.nan, 0.0]))

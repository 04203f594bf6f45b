"""VAD: Silero finds real speech, the gate is smooth and spares speech, evaluation and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import GateConfig
from common.errors import UserError
from common.plots import plot_vad
from common.speech_aware import (
    evaluate_speech_aware,
    format_speech_aware_table,
    level_db,
    speech_aware_row,
)
from common.vad import VadResult, detect_speech, load_vad_model
from common.vad_gate import apply_vad_gate, gate_gain

SR = 16000


@pytest.fixture(scope="module")
def padded_speech(speech_clip: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Real speech with 1.5 s of quiet noise before and 1 s after: (wav, start, end)."""
    rng = np.random.default_rng(0)
    speech = speech_clip  # one 8.4 s sentence, speech from start to end
    lead, tail = int(1.5 * SR), SR
    wav = 0.002 * rng.standard_normal(lead + len(speech) + tail).astype(np.float32)
    wav[lead : lead + len(speech)] += speech
    return wav, lead, lead + len(speech)


def test_detects_real_speech_and_not_the_padding(padded_speech):
    wav, start, end = padded_speech
    vad = detect_speech(wav, SR)
    assert vad.segments, "no speech found in a real speech clip"
    first, last = vad.segments[0][0], vad.segments[-1][1]
    # Silero pads segments by 30 ms and works in 32 ms frames: allow 0.15 s either way.
    assert abs(first - start) < 0.15 * SR
    assert abs(last - end) < 0.3 * SR
    mask = vad.mask()
    assert not mask[: start - int(0.2 * SR)].any()
    assert not mask[end + int(0.35 * SR) :].any()
    assert len(vad.probs) == int(np.ceil(len(wav) / 512))


def test_other_sample_rates_map_back_to_the_callers_samples(padded_speech):
    import soxr

    wav, _, _ = padded_speech
    vad16 = detect_speech(wav, SR)
    wav48 = soxr.resample(wav, SR, 48000).astype(np.float32)
    vad48 = detect_speech(wav48, 48000)
    assert vad48.n_samples == len(wav48)
    assert len(vad48.segments) == len(vad16.segments)
    for (s16, _), (s48, _) in zip(vad16.segments, vad48.segments):
        assert abs(s48 - 3 * s16) <= 3 * 512


def test_loading_silero_keeps_torch_threads():
    torch.set_num_threads(2)
    load_vad_model.cache_clear()
    from common.vad import _silero_api

    _silero_api.cache_clear()
    load_vad_model()
    assert torch.get_num_threads() == 2


def test_missing_model_file_is_a_clear_error(monkeypatch):
    import common.vad as vad_module

    monkeypatch.setattr(vad_module, "VAD_MODEL_FILE", "no_such_model.onnx")
    load_vad_model.cache_clear()
    try:
        with pytest.raises(UserError, match="no_such_model.onnx.*reinstall"):
            vad_module.load_vad_model()
    finally:
        load_vad_model.cache_clear()


def _two_segment_vad(n: int = 3 * SR) -> VadResult:
    return VadResult(np.zeros(0, np.float32), [(SR // 2, SR), (2 * SR, int(2.5 * SR))], n)


def test_gate_gain_spares_speech_reaches_floor_and_has_no_clicks():
    vad = _two_segment_vad()
    cfg = GateConfig(floor_db=-20.0, fade_ms=50.0)
    gain = gate_gain(vad, cfg)
    mask = vad.mask()
    assert np.all(gain[mask] == 1.0)
    floor = 10 ** (-20 / 20)
    # Beyond the fade (50 ms = 800 samples) non-speech sits exactly at the floor.
    assert np.allclose(gain[: SR // 2 - 801], floor)
    assert np.allclose(gain[int(1.2 * SR) : int(1.8 * SR)], floor)
    # Smooth: the largest sample-to-sample change of a raised-cosine fade over 800 samples is
    # (1 - floor) * pi / (2 * 800), far below a step of (1 - floor).
    assert np.max(np.abs(np.diff(gain))) < (1 - floor) * np.pi / (2 * 800) * 1.01


def test_gate_config_is_checked():
    with pytest.raises(UserError, match="floor_db"):
        GateConfig(floor_db=6.0)


def test_gated_real_noisy_file_keeps_speech_and_lowers_non_speech(shared_data: Path):
    from common.audio import list_audio, load_audio

    noisy = load_audio(list_audio(shared_data / "noisy_only" / "dns2020" / "blindset")[0])
    gated, vad = apply_vad_gate(noisy, SR, GateConfig(floor_db=-20.0))
    mask = vad.mask()
    assert 0 < mask.mean() < 1, "this clip has both speech and pauses"
    assert np.array_equal(gated[mask], noisy[mask])
    far = gate_gain(vad, GateConfig(floor_db=-20.0)) < 0.1001
    assert far.any()
    assert level_db(gated[far]) == pytest.approx(level_db(noisy[far]) - 20.0, abs=0.01)


def test_gate_refuses_a_vad_of_another_signal():
    with pytest.raises(UserError, match="detect on this signal"):
        apply_vad_gate(np.zeros(SR, np.float32), SR, vad=_two_segment_vad())


def test_speech_aware_row_measures_residual_noise(speech_clip: np.ndarray):
    rng = np.random.default_rng(1)
    clean = np.concatenate([np.zeros(SR, np.float32), speech_clip[: 3 * SR]])
    noise = 0.01 * rng.standard_normal(len(clean)).astype(np.float32)
    row = speech_aware_row(clean, {"noisy": clean + noise, "quieter": clean + 0.1 * noise})
    assert 0.5 < row["speech_fraction"] < 0.9
    # 10x less noise is 20 dB less where there is only noise; the non-speech region also holds
    # the sentence's pauses (breaths), so the drop is smaller but still large.
    assert row["quieter_nonspeech_db"] < row["noisy_nonspeech_db"] - 10
    for key in ("pesq", "stoi", "si_sdr", "speech_pesq", "speech_si_sdr"):
        assert row[f"quieter_{key}"] > row[f"noisy_{key}"]
    assert "failures" not in row


def test_evaluate_speech_aware_on_real_pairs(shared_data: Path):
    from common.pairs import discover_pairs

    root = shared_data / "pairs" / "pesq_babble0db"
    pairs = discover_pairs(root / "noisy", root / "clean")
    result = evaluate_speech_aware(pairs, lambda wav, sr: 0.5 * wav)
    row = result.rows[0]
    # Halving the noisy input lowers its non-speech level by 6 dB; gating lowers it further.
    assert row["enhanced_nonspeech_db"] == pytest.approx(row["noisy_nonspeech_db"] - 6.02, abs=0.01)
    assert row["gated_nonspeech_db"] < row["enhanced_nonspeech_db"]
    table = format_speech_aware_table(result.summary)
    assert table.count("\n") == 4 and "| gated |" in table


def test_plot_vad_writes_a_figure(tmp_path: Path, padded_speech):
    wav, _, _ = padded_speech
    vad = detect_speech(wav, SR)
    gated, _ = apply_vad_gate(wav, SR, vad=vad)
    fig = plot_vad(
        {"noisy": wav, "gated": gated}, vad, gain=gate_gain(vad), path=tmp_path / "v.png"
    )
    assert (tmp_path / "v.png").stat().st_size > 10_000
    assert len(fig.axes) >= 4

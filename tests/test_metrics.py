"""Metrics: honest numbers from waveforms, failures recorded (never zeros), and the evaluate CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from pystoi import stoi as pystoi_reference

from common.audio import write_audio
from common.cli import main
from common.evaluation import EvalItem, evaluate_pairs, write_results
from common.metrics import (
    METRIC_NAMES,
    PESQ_WB_MAX,
    MetricError,
    metrics_self_check,
    score,
    si_sdr,
    stoi_estoi,
)

SR = 16000


def voice_like(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A harmonic, syllable-modulated signal: enough like speech for PESQ/STOI to accept it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    wav = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)), 0, None) ** 2
    return (0.1 * wav * envelope).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(len(wav))
    noise *= np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (wav + noise).astype(np.float32)


def make_items(n: int, seconds: float = 2.0, enhanced: bool = True) -> list[EvalItem]:
    items = []
    for i in range(n):
        clean = voice_like(seconds, seed=i)
        items.append(
            EvalItem(
                f"item{i}.wav",
                clean=clean,
                noisy=add_noise(clean, 0.0, seed=100 + i),
                enhanced=add_noise(clean, 15.0, seed=200 + i) if enhanced else None,
            )
        )
    return items


# --- single metrics -------------------------------------------------------------------------


def test_pesq_self_check_on_real_speech(speech_clip):
    checked = metrics_self_check(speech_clip)
    assert checked["clean"]["pesq"] == pytest.approx(PESQ_WB_MAX, abs=0.01)
    assert checked["noisy"]["pesq"] < checked["clean"]["pesq"] - 1.0
    assert all(checked["noisy"][m] < checked["clean"][m] for m in METRIC_NAMES)


def test_self_check_catches_a_broken_pesq(monkeypatch, speech_clip):
    import pesq as pesq_lib

    monkeypatch.setattr(pesq_lib, "pesq", lambda *args: 3.0)
    with pytest.raises(MetricError, match="PESQ\\(clean, clean\\)"):
        metrics_self_check(speech_clip)


def test_stoi_estoi_match_pystoi_on_real_speech(speech_clip):
    noisy = add_noise(speech_clip, 5.0)
    stoi, estoi = stoi_estoi(speech_clip, noisy)
    assert stoi == pytest.approx(pystoi_reference(speech_clip, noisy, SR), abs=1e-9)
    assert estoi == pytest.approx(pystoi_reference(speech_clip, noisy, SR, extended=True), abs=1e-6)


def test_si_sdr_of_scaled_copy_is_very_high_and_of_noise_very_low():
    clean = voice_like()
    assert si_sdr(clean, 0.3 * clean) > 100
    noise = np.random.default_rng(3).standard_normal(len(clean))
    assert si_sdr(clean, noise) < -25
    assert si_sdr(clean, add_noise(clean, 10.0)) == pytest.approx(10.0, abs=0.5)


def test_si_sdr_ignores_dc_offset_and_scale():
    clean = voice_like()
    noisy = add_noise(clean, 5.0)
    base = si_sdr(clean, noisy)
    assert si_sdr(clean + 0.2, noisy - 0.1) == pytest.approx(base, abs=1e-6)
    assert si_sdr(clean, 4.0 * noisy) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize(
    "est, reason",
    [
        (np.zeros(SR * 2, np.float32), "silent"),
        (np.full(SR * 2, np.nan, np.float32), "NaN"),
    ],
)
def test_score_refuses_silence_and_nan(est, reason):
    with pytest.raises(MetricError, match=reason):
        score(voice_like(), est)


def test_score_crops_different_lengths_with_a_warning():
    clean = voice_like(2.0)
    with pytest.warns(UserWarning, match="cropped to 24000"):
        values = score(clean, add_noise(clean, 10.0)[:24000])
    assert set(values) == set(METRIC_NAMES) and all(math.isfinite(v) for v in values.values())


# --- evaluate_pairs ---------------------------------------------------------------------------


def test_silence_and_short_clips_are_recorded_failures_not_zeros():
    good = make_items(1, enhanced=False)[0]
    silent = EvalItem("silent.wav", clean=voice_like(seed=5), noisy=np.zeros(2 * SR, np.float32))
    short = EvalItem("short.wav", clean=voice_like(0.2, seed=6), noisy=voice_like(0.2, seed=7))
    result = evaluate_pairs([good, silent, short], workers=1, progress=False)

    failed = {(f["file"], f["metric"]) for f in result.summary["failures"]}
    assert {("silent.wav", m) for m in METRIC_NAMES} <= failed
    assert ("short.wav", "pesq") in failed  # under PESQ's 0.25 s minimum
    assert all(f["reason"] and f["signal"] == "noisy" for f in result.summary["failures"])
    assert result.rows[1]["noisy_pesq"] is None

    good_pesq = result.rows[0]["noisy_pesq"]
    pesq_stats = result.summary["noisy"]["pesq"]
    assert pesq_stats["n"] == 1 and pesq_stats["mean"] == pytest.approx(good_pesq)
    assert result.summary["count"] == 3


def test_unreadable_file_is_recorded_not_raised(tmp_path):
    clean = write_audio(tmp_path / "clean.wav", voice_like())
    broken = tmp_path / "noisy.wav"
    broken.write_bytes(b"not audio")
    result = evaluate_pairs([EvalItem("x.wav", clean, broken)], workers=1, progress=False)
    reasons = {f["reason"] for f in result.summary["failures"]}
    assert len(result.summary["failures"]) == len(METRIC_NAMES)
    assert any("noisy.wav" in r for r in reasons)


def test_unusable_clean_reference_keeps_every_column(tmp_path):
    broken = tmp_path / "clean.wav"
    broken.write_bytes(b"")
    items = [EvalItem("bad.wav", broken, voice_like(), voice_like(seed=1))] + make_items(1)
    result = evaluate_pairs(items, workers=1, progress=False)
    assert list(result.rows[0]) == list(result.rows[1])
    assert len(result.summary["failures"]) == 2 * len(METRIC_NAMES)
    csv_path, _ = write_results(result, tmp_path / "out")
    assert "clean reference unusable" in csv_path.read_text()


def test_length_mismatch_warns_naming_the_file_and_crops_all_signals():
    clean = voice_like(3.0)
    noisy = add_noise(clean, 5.0)
    short = int(2.5 * SR)
    item = EvalItem("uneven.wav", clean=clean, noisy=noisy, enhanced=add_noise(clean, 15.0)[:short])
    with pytest.warns(UserWarning, match="uneven.wav.*cropped to 40000"):
        result = evaluate_pairs([item], workers=1, progress=False)
    row = result.rows[0]
    assert row["seconds"] == pytest.approx(2.5)
    # The noisy baseline is scored on the same span as the enhanced signal, so the delta is paired.
    assert row["noisy_si_sdr"] == pytest.approx(si_sdr(clean[:short], noisy[:short]))
    assert not result.summary["failures"]


def test_delta_is_enhanced_minus_noisy_per_file():
    result = evaluate_pairs(make_items(2), workers=1, progress=False)
    for row in result.rows:
        for m in METRIC_NAMES:
            assert row[f"delta_{m}"] == pytest.approx(row[f"enhanced_{m}"] - row[f"noisy_{m}"])
    # 15 dB vs 0 dB SNR: the "enhanced" copies must score better on every metric.
    assert all(result.summary["delta"][m]["mean"] > 0 for m in METRIC_NAMES)


def test_parallel_path_gives_the_same_numbers_as_serial():
    items = make_items(4, seconds=1.5)
    serial = evaluate_pairs(items, workers=1, progress=False)
    parallel = evaluate_pairs(items, workers=2, progress=False)
    assert [r["file"] for r in parallel.rows] == [r["file"] for r in serial.rows]
    for a, b in zip(serial.rows, parallel.rows):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-9), key


def test_parallel_path_reports_worker_warnings():
    clean = voice_like(2.0)
    items = make_items(2) + [EvalItem("short_noisy.wav", clean, add_noise(clean, 5.0)[:SR])]
    with pytest.warns(UserWarning, match="short_noisy.wav"):
        evaluate_pairs(items, workers=2, progress=False)


def test_write_results_documented_fields(tmp_path):
    items = make_items(2) + [EvalItem("silent.wav", voice_like(), np.zeros(2 * SR), None)]
    result = evaluate_pairs(items, workers=1, progress=False)
    csv_path, json_path = write_results(result, tmp_path / "out")

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and rows[2]["file"] == "silent.wav"
    for signal in ("noisy", "enhanced", "delta"):
        assert all(f"{signal}_{m}" in rows[0] for m in METRIC_NAMES)
    assert rows[2]["noisy_pesq"] == "" and "silent" in rows[2]["failures"]
    assert float(rows[0]["noisy_pesq"]) == pytest.approx(result.rows[0]["noisy_pesq"])

    summary = json.loads(json_path.read_text())
    assert summary["count"] == 3
    for group in ("noisy", "enhanced", "delta"):
        for m in METRIC_NAMES:
            assert set(summary[group][m]) == {"mean", "std", "n"}
    assert summary["noisy"]["pesq"]["n"] == 2
    assert summary["enhanced"]["pesq"]["n"] == 2  # the silent item had no enhanced signal
    assert summary["failures"] and all(
        set(f) == {"file", "signal", "metric", "reason"} for f in summary["failures"]
    )


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_on_real_pairs(shared_data, tmp_path, capsys):
    pairs = shared_data / "pairs" / "dns2020_synthetic"
    rc = main(["evaluate", "--pairs", str(pairs), "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "pesq" in out and "noisy" in out and "enhanced" not in out
    summary = json.loads((tmp_path / "eval_summary.json").read_text())
    assert summary["count"] == 3 and summary["noisy"]["pesq"]["n"] == 3
    assert 1.0 <= summary["noisy"]["pesq"]["mean"] < PESQ_WB_MAX
    assert (tmp_path / "eval_per_file.csv").is_file()


def test_cli_with_enhanced_folder(tmp_path, capsys):
    for item in make_items(2, seconds=1.5):
        for role in ("clean", "noisy"):
            write_audio(tmp_path / "pairs" / role / item.name, getattr(item, role))
        # .flac for .wav: enhanced files match by name without the suffix.
        write_audio(tmp_path / "enh" / item.name.replace(".wav", ".flac"), item.enhanced)
    rc = main(
        [
            "evaluate",
            *("--pairs", str(tmp_path / "pairs"), "--enhanced", str(tmp_path / "enh")),
            *("--out", str(tmp_path / "out"), "--workers", "2", "--no-progress"),
        ]
    )
    assert rc == 0
    assert "delta" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "eval_summary.json").read_text())
    assert summary["enhanced"]["pesq"]["n"] == 2


def test_cli_missing_folder_is_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    rc = main(["evaluate", "--pairs", str(missing), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error:") and str(missing) in err and len(err.splitlines()) == 1


def test_cli_missing_enhanced_files_is_one_line_error(tmp_path, capsys):
    for item in make_items(2, seconds=1.0, enhanced=False):
        for role in ("clean", "noisy"):
            write_audio(tmp_path / "pairs" / role / item.name, getattr(item, role))
    write_audio(tmp_path / "enh" / "item0.wav", voice_like(1.0))
    rc = main(["evaluate", "--pairs", str(tmp_path / "pairs"), "--enhanced", str(tmp_path / "enh")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "1 of 2 files missing" in err and "item1.wav" in err

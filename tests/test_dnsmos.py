"""DNSMOS: the reference implementation's numbers, scorable and unscorable signals, and the
`evaluate` command on recordings without a clean reference (and as an extra column for pairs)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_common

from common.audio import SAMPLE_RATE, audio_info, list_audio, load_audio, resample, write_audio
from common.dnsmos import SPEECHMOS_KEYS, dnsmos
from common.errors import UserError
from common.evaluation import EvalItem, evaluate_pairs
from common.metric_names import DNSMOS_METRICS, METRIC_NAMES
from common.metrics import MetricError

SHIPPED = REPO / "checkpoints" / "lite-v2.pt"
# Equal to float rounding: the same models on the same float32 samples.
REL = 1e-6


def noisy_only_files(shared_data: Path) -> list[Path]:
    return list_audio(shared_data / "noisy_only")


def shortest(files: list[Path], n: int) -> list[Path]:
    """The n shortest files (each DNSMOS window costs about a CPU second here)."""
    return sorted(files, key=lambda p: audio_info(p).frames)[:n]


def reference(sample: str | np.ndarray) -> dict[str, float]:
    from speechmos import dnsmos as speechmos_dnsmos

    scores = speechmos_dnsmos.run(sample, SAMPLE_RATE)
    return {name: float(scores[key]) for name, key in zip(DNSMOS_METRICS, SPEECHMOS_KEYS)}


@pytest.mark.shared_data
def test_scores_are_speechmos_own_on_real_recordings(shared_data):
    from speechmos.dnsmos import INPUT_LENGTH as INPUT_SECONDS  # its window, 9.01 s

    files = noisy_only_files(shared_data)
    # The shortest clip (tiled to the 9 s window) and one longer than a window (several windows).
    picked = shortest(files, 1)
    longer = [p for p in files if audio_info(p).frames > (INPUT_SECONDS + 1) * SAMPLE_RATE]
    picked.append(shortest(longer, 1)[0])
    assert audio_info(picked[0]).frames < INPUT_SECONDS * SAMPLE_RATE
    for path in picked:
        ours = dnsmos(load_audio(path))
        assert ours == pytest.approx(reference(str(path)), rel=REL), path.name
        assert all(1.0 <= v <= 5.0 for v in ours.values()), ours


@pytest.mark.shared_data
def test_short_clips_other_rates_and_loud_samples_are_handled(shared_data):
    wav = load_audio(shortest(noisy_only_files(shared_data), 1)[0])
    # Half a second, tiled many times over to fill the window (the reference's own tiling: the
    # test above compares a clip shorter than the window with it). Another rate: resampled to
    # 16 kHz with the project's resampler, then the same scores.
    short = wav[: SAMPLE_RATE // 2]
    wav48 = resample(short, SAMPLE_RATE, 48000)
    scores = dnsmos(wav48, 48000)
    assert scores == pytest.approx(dnsmos(resample(wav48, 48000, SAMPLE_RATE)), rel=REL)
    assert all(1.0 <= v <= 5.0 for v in scores.values()), scores
    # Samples beyond +-1 (the reference refuses them) are clipped, as a 16-bit file would be.
    loud = 4 * short
    assert dnsmos(loud) == pytest.approx(dnsmos(np.clip(loud, -1, 1)), rel=REL)


@pytest.mark.parametrize(
    ("wav", "reason"),
    [
        (np.zeros(SAMPLE_RATE, dtype=np.float32), "silent"),
        (np.full(SAMPLE_RATE, np.nan, dtype=np.float32), "NaN"),
        (np.zeros(0, dtype=np.float32), "no samples"),
    ],
)
def test_unscorable_signals_raise_metric_error(wav, reason):
    with pytest.raises(MetricError, match=reason):
        dnsmos(wav)


def test_a_silent_file_is_a_recorded_failure_not_a_score(tmp_path, speech_clip):
    items = [
        EvalItem("speech", clean=None, noisy=speech_clip[: 2 * SAMPLE_RATE]),
        EvalItem("silence", clean=None, noisy=np.zeros(SAMPLE_RATE, dtype=np.float32)),
    ]
    result = evaluate_pairs(items, workers=1, progress=False, dnsmos=True)
    assert [r["noisy_dnsmos_ovrl"] is None for r in result.rows] == [False, True]
    assert {f["metric"] for f in result.summary["failures"]} == set(DNSMOS_METRICS)
    assert all(result.summary["noisy"][m]["n"] == 1 for m in DNSMOS_METRICS)
    assert set(result.summary["noisy"]) == set(DNSMOS_METRICS)  # no reference, no PESQ


def test_items_without_references_need_dnsmos_and_are_not_mixed_with_pairs(speech_clip):
    alone = EvalItem("a", clean=None, noisy=speech_clip)
    paired = EvalItem("b", clean=speech_clip, noisy=speech_clip)
    with pytest.raises(UserError, match="only DNSMOS"):
        evaluate_pairs([alone], progress=False)
    with pytest.raises(UserError, match="some items have a clean reference"):
        evaluate_pairs([alone, paired], progress=False, dnsmos=True)


# ------------------------------------------------------------------ the command a user types


def evaluate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_common("evaluate", *args, "--no-progress", "--workers", "2", env=env)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def recordings(shared_data: Path, folder: Path, n: int = 2) -> Path:
    """`n` short recordings of noisy_only/, linked into `folder` in sub-folders as they were."""
    root = shared_data / "noisy_only"
    for path in shortest(noisy_only_files(shared_data), n):
        link = folder / path.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return folder


@pytest.mark.shared_data
@pytest.mark.slow
def test_noisy_only_folder_against_its_enhanced_files(shared_data, tmp_path):
    noisy = recordings(shared_data, tmp_path / "noisy")
    enhanced = tmp_path / "enhanced"
    for path in list_audio(noisy):  # a stand-in "enhancement": half the level, as WAV
        out = enhanced / path.relative_to(noisy).with_suffix(".wav")
        write_audio(out, 0.5 * load_audio(path), SAMPLE_RATE)
    out = tmp_path / "eval"
    proc = evaluate("--noisy-only", str(noisy), "--enhanced", str(enhanced), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "dnsmos_ovrl" in proc.stdout and "pesq" not in proc.stdout
    rows = read_csv(out / "eval_per_file.csv")
    assert len(rows) == len(list_audio(noisy))
    for row in rows:
        for signal, folder in (("noisy", noisy), ("enhanced", enhanced)):
            (path,) = [p for p in list_audio(folder) if p.with_suffix("").name in row["file"]]
            expected = dnsmos(load_audio(path))
            got = {m: float(row[f"{signal}_{m}"]) for m in DNSMOS_METRICS}
            assert got == pytest.approx(expected, rel=REL), (signal, row["file"])
        assert float(row["delta_dnsmos_ovrl"]) == pytest.approx(
            float(row["enhanced_dnsmos_ovrl"]) - float(row["noisy_dnsmos_ovrl"])
        )
        assert not any(f"_{m}" in key for key in row for m in METRIC_NAMES)
    summary = json.loads((out / "eval_summary.json").read_text())
    for group in ("noisy", "enhanced", "delta"):
        assert list(summary[group]) == list(DNSMOS_METRICS)


@pytest.mark.shared_data
@pytest.mark.slow
def test_noisy_only_folder_enhanced_by_a_checkpoint(shared_data, tmp_path):
    noisy = recordings(shared_data, tmp_path / "noisy", n=1)
    out = tmp_path / "eval"
    proc = evaluate("--noisy-only", str(noisy), "--ckpt", str(SHIPPED), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (row,) = read_csv(out / "eval_per_file.csv")
    assert all(row[f"{g}_{m}"] for g in ("noisy", "enhanced", "delta") for m in DNSMOS_METRICS)


@pytest.mark.shared_data
@pytest.mark.slow
def test_pairs_get_dnsmos_columns_beside_the_reference_metrics(shared_data, tmp_path):
    pairs = shared_data / "pairs" / "pesq_babble0db"
    out = tmp_path / "eval"
    proc = evaluate("--pairs", str(pairs), "--ckpt", str(SHIPPED), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "dnsmos_p808" in proc.stdout and "pesq" in proc.stdout
    (row,) = read_csv(out / "eval_per_file.csv")
    for group in ("noisy", "enhanced", "delta"):
        assert all(row[f"{group}_{m}"] for m in METRIC_NAMES + DNSMOS_METRICS), row
    (noisy,) = list_audio(pairs / "noisy")
    got = {m: float(row[f"noisy_{m}"]) for m in DNSMOS_METRICS}
    assert got == pytest.approx(dnsmos(load_audio(noisy)), rel=REL)
    # --no-dnsmos: the reference metrics only, as before DNSMOS.
    proc = evaluate("--pairs", str(pairs), "--no-dnsmos", "--out", str(tmp_path / "plain"))
    assert proc.returncode == 0, proc.stderr
    (row,) = read_csv(tmp_path / "plain" / "eval_per_file.csv")
    assert "noisy_pesq" in row and not any("dnsmos" in key for key in row)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--noisy-only", "{tmp}/nowhere"], "folder not found"),
        (["--noisy-only", "{tmp}", "--no-dnsmos"], "drop --no-dnsmos"),
        (["--noisy-only", "{tmp}", "--enhanced", "{tmp}", "--ckpt", "x.pt"], "not both"),
        (["--noisy-only", "{tmp}", "--pairs", "{tmp}"], "not allowed with"),
    ],
)
def test_mistakes_are_one_line(tmp_path, args, message):
    proc = evaluate(*[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert message in error


def test_a_speechmos_without_its_models_is_one_line_naming_what_to_install(tmp_path, speech_clip):
    fake = tmp_path / "fake" / "speechmos"  # found first on the path: a package without models
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    write_audio(tmp_path / "rec" / "a.wav", speech_clip, SAMPLE_RATE)
    proc = evaluate(
        "--noisy-only", str(tmp_path / "rec"), "--out", str(tmp_path / "out"),
        env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"},
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert "model file missing" in error and "pip install" in error and "speechmos" in error

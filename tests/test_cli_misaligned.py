"""Real pairs where one is shifted by 0.5 s or its clean file is another utterance: `evaluate`
warns naming each, `data check` and the training guard exit 2 naming each (the mean correlation
over six pairs stays high enough to hide one bad pair, which is what used to happen)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_common

SHIFT_SECONDS = 0.5


def _shift(path: Path, seconds: float) -> None:
    wav, sr = sf.read(str(path), dtype="float32")
    n = int(seconds * sr)
    sf.write(str(path), np.concatenate([np.zeros(n, np.float32), wav])[: len(wav)], sr)


def _replace_with_other_utterance(path: Path, other: Path) -> None:
    wav, sr = sf.read(str(path), dtype="float32")
    other_wav, _ = sf.read(str(other), dtype="float32")
    sf.write(str(path), np.resize(other_wav, len(wav)), sr)  # same length, other words


@pytest.fixture
def bad_pairs(shared_data: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """A copy of the six p287 pairs with one noisy file delayed and one clean file swapped."""
    src = shared_data / "pairs" / "vbd_train_p287"
    root = tmp_path / "pairs"
    shutil.copytree(src, root)
    names = sorted(p.name for p in (root / "noisy").iterdir())
    shifted, swapped = names[2], names[4]
    _shift(root / "noisy" / shifted, SHIFT_SECONDS)
    _replace_with_other_utterance(root / "clean" / swapped, src / "clean" / names[5])
    return root, shifted, swapped


def _errors(proc: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]


def test_evaluate_warns_naming_each_misaligned_pair(bad_pairs, tmp_path):
    root, shifted, swapped = bad_pairs
    proc = run_common(
        "evaluate", "--pairs", str(root), "--out", str(tmp_path / "ev"), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert any(shifted in ln and f"lags clean by {SHIFT_SECONDS:.2f} s" in ln for ln in warned)
    assert any(swapped in ln and "not the same recording" in ln for ln in warned)
    assert len([ln for ln in warned if "pairing" in ln]) == 2  # the four good pairs: no warning
    summary = json.loads((tmp_path / "ev" / "eval_summary.json").read_text())
    assert sorted(m["file"] for m in summary["misaligned"]) == sorted([shifted, swapped])


def test_evaluate_of_the_untouched_pairs_warns_about_none(shared_data, tmp_path):
    pairs = shared_data / "pairs" / "vbd_train_p287"
    proc = run_common(
        "evaluate", "--pairs", str(pairs), "--out", str(tmp_path / "ev"), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    assert "pairing" not in proc.stderr
    assert json.loads((tmp_path / "ev" / "eval_summary.json").read_text())["misaligned"] == []


def test_data_check_exits_2_naming_each_bad_pair(bad_pairs):
    root, shifted, swapped = bad_pairs
    proc = run_common("data", "check", "--pairs", str(root))
    assert proc.returncode == 2
    (error,) = _errors(proc)
    assert "2 of 6" in error and shifted in error and swapped in error
    assert f"lags clean by {SHIFT_SECONDS:.2f} s" in error


def test_training_guard_names_the_bad_pairs(bad_pairs, tmp_path):
    root, shifted, swapped = bad_pairs
    # The Kaggle layout as extracted folders: train/ + y_train/, test/ + y_test/.
    kaggle = tmp_path / "kaggle"
    for noisy, clean in (("train", "y_train"), ("test", "y_test")):
        shutil.copytree(root / "noisy", kaggle / noisy)
        shutil.copytree(root / "clean", kaggle / clean)
    proc = run_common(
        "train", "--model", "lite", "--data", str(kaggle), "--out", str(tmp_path / "run"),
        "--val-fraction", "0", "--batch-size", "2", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2
    (error,) = _errors(proc)
    assert shifted in error and swapped in error and "not aligned" in error
    assert not (tmp_path / "run" / "last.pt").exists()

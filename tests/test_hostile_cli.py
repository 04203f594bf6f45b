"""Issue 21's cases, each as a user types it: one `error:` line naming the option, exit 2, no
traceback (the property-based test, tests/test_hostile_values.py, covers every option in-process;
these prove the same through `python -m common` and `python -m common.demo`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import ONE_THREAD, REPO, run_python

from common.checkpoint import SHIPPED_CHECKPOINT

NOBODY = 65534


def run(*args: str, user: int | None = None) -> subprocess.CompletedProcess:
    prefix = []
    if user is not None:
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    return run_python(*args, prefix=prefix, env=ONE_THREAD)


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    for i in range(2):
        clean = 0.1 * rng.standard_normal(16000)
        for sub, wav in (("clean", clean), ("noisy", clean + 0.05 * rng.standard_normal(16000))):
            (root / sub).mkdir(exist_ok=True)
            sf.write(root / sub / f"p{i}.wav", wav.astype(np.float32), 16000)
    return root


TRAIN = ["-m", "common", "train", "--recipe", "lite", "--out", "build/never-written"]


@pytest.mark.parametrize(
    ("args", "option", "rule"),
    [
        ([*TRAIN, "--segment-seconds", "nan"], "--segment-seconds nan", "finite"),
        ([*TRAIN, "--snr", "nan", "5"], "--snr nan", "finite"),
        ([*TRAIN, "--seed", "-1"], "--seed -1", "from 0 to"),
        ([*TRAIN, "--n-fft", "0"], "--n-fft 0", "from 8 to"),
        ([*TRAIN, "--patience", "-1"], "--patience -1", "from 0 to"),
        ([*TRAIN, "--val-fraction", "2"], "--val-fraction 2", "< 1"),
        ([*TRAIN, "--batch-size", "0"], "--batch-size 0", "from 1 to"),
        ([*TRAIN, "--set", "train.lr=NaN"], "--set train.lr=nan", "finite"),
        (["-m", "common.demo", "--port", "99999"], "--port", "from 1 to 65535"),
        (["-m", "common.demo", "--max-seconds", "nan"], "--max-seconds nan", "finite"),
        (
            ["-m", "common", "export", "--ckpt", "x.pt", "--out", "m.onnx", "--opset", "0"],
            "--opset 0",
            "9..20",
        ),
    ],  # fmt: skip
)
def test_a_hostile_value_is_one_error_line_naming_the_option(args, option, rule):
    proc = run(*args)
    assert_one_error_line(proc, option, rule)
    assert not (REPO / "build" / "never-written").exists()


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("--segment", "nan", "finite"),
        ("--n-pairs", "-1", "from 0"),
        ("--min-corr", "nan", "finite"),
    ],
)
def test_data_check_refuses_hostile_values(pairs, option, value, rule):
    proc = run("-m", "common", "data", "check", "--pairs", str(pairs), option, value)
    assert_one_error_line(proc, f"argument {option}", rule)


def test_vad_floor_nan_blames_the_option_not_the_checkpoint(pairs, tmp_path):
    src = pairs / "noisy" / "p0.wav"
    for extra in (["--vad"], []):  # checked even when the gate is off
        proc = run(
            "-m", "common", "enhance", "--ckpt", str(SHIPPED_CHECKPOINT), *extra,
            "--vad-floor-db", "nan", str(src), str(tmp_path / "out.wav"),
        )  # fmt: skip
        assert_one_error_line(proc, "--vad-floor-db nan", "finite")
        assert "checkpoint" not in proc.stderr


def test_export_opset_out_of_range_prints_one_line_not_torch_ir(tmp_path):
    proc = run(
        "-m", "common", "export", "--ckpt", str(SHIPPED_CHECKPOINT),
        "--out", str(tmp_path / "m.onnx"), "--opset", "1000",
    )  # fmt: skip
    assert_one_error_line(proc, "--opset 1000", "9..20")
    assert proc.stdout == "" and not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def test_an_unreadable_input_says_permission_denied(pairs, tmp_path_factory):
    """Mode 000: root reads anything, so the command runs as `nobody` when the tests run as root."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="se-perm-"))
    try:
        folder.chmod(0o777)
        src = folder / "in.wav"
        shutil.copy(pairs / "noisy" / "p0.wav", src)
        src.chmod(0o000)
        user = NOBODY if os.geteuid() == 0 else None
        proc = run(
            "-m", "common", "enhance", "--ckpt", str(SHIPPED_CHECKPOINT),
            str(src), str(folder / "out.wav"), user=user,
        )  # fmt: skip
        assert_one_error_line(proc, f"{src}: permission denied")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

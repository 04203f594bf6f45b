"""`python -m common data ...` as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_common

from common.cli import main

SR = 16000


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_common("data", *args)


def write_pairs(root: Path, n: int = 4, mispaired: bool = False) -> Path:
    rng = np.random.default_rng(0)
    cleans = [0.2 * rng.standard_normal(2 * SR) for _ in range(n)]
    for i, clean in enumerate(cleans):
        noisy = clean + 0.05 * rng.standard_normal(2 * SR)
        partner = cleans[(i + 1) % n] if mispaired else clean
        for folder, wav in (("noisy", noisy), ("clean", partner)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / folder / f"f{i}.wav"), wav.astype(np.float32), SR)
    return root


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0]


def test_check_reports_aligned_pairs(tmp_path):
    proc = run_cli("check", "--pairs", str(write_pairs(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "pairs: 4 found, 4 usable" in proc.stdout
    assert "correlation" in proc.stdout and "OK" in proc.stdout


def test_check_exits_nonzero_when_the_guard_trips(tmp_path):
    proc = run_cli("check", "--pairs", str(write_pairs(tmp_path, mispaired=True)))
    assert_one_line_error(proc, "not aligned")


def test_check_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["data", "check", "--pairs", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "absent" in err


def test_extract_truncated_archive_is_one_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("test.7z", "y_test.7z"):
        (tmp_path / "in" / name).write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04 truncated")
    args = [
        "data",
        "extract",
        str(tmp_path / "in"),
        "--work",
        str(tmp_path / "work"),
        "--test-only",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "test.7z" in err and "download it again" in err


@pytest.mark.parametrize("command", ["extract", "make-synthetic", "make-testset", "check"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", command, "--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


def test_make_synthetic_command(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "make-synthetic", str(out), "--n-train", "1", "--n-test", "1"]) == 0
    assert sorted(p.name for p in out.glob("*.7z")) == [
        "test.7z",
        "train.7z",
        "y_test.7z",
        "y_train.7z",
    ]

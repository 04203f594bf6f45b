"""`enhance` and `export` as a user types them: a user's files are never lost or corrupted, and
every mistake is one `error:` line (never a traceback). Each case runs `python -m common ...`."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ONE_THREAD, REPO, run_common
from train_helpers import save_model_checkpoint

from common.models import build_model

SMALL_LITE = {"width": 16, "enc_channels": 8, "time_hidden": 16, "n_blocks": 1}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A small `lite` with random weights, in the trainer's checkpoint format."""
    torch.manual_seed(0)
    model = build_model("lite", **SMALL_LITE)
    return save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", model)


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return run_common(*args, cwd=cwd, env=ONE_THREAD)


def enhance(ckpt: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return cli("enhance", "--ckpt", str(ckpt), "--no-progress", *map(str, args))


def tone(path: Path, seed: int, seconds: float = 0.6, sr: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    wav = 0.3 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + 0.03 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav.astype(np.float32), sr)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): digest(p) for p in folder.rglob("*") if p.is_file()}


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- data safety -------------------------------------------------------------------------------


def test_out_inside_in_neither_reads_nor_replaces_what_is_in_out(tmp_path, ckpt):
    nest = tmp_path / "nest"
    tone(nest / "a.wav", 1)
    users_file = tone(nest / "sub" / "a.wav", 2)  # the user's own file, inside OUT
    before = digest(users_file)
    proc = enhance(ckpt, nest, nest / "sub")
    assert proc.returncode == 0, proc.stderr
    assert digest(users_file) == before
    assert f"{nest / 'sub' / 'a.wav'}: exists, kept; pass --overwrite" in proc.stderr
    assert not (nest / "sub" / "sub").exists()  # nothing in OUT was read as input
    # Running again enhances nothing twice: the outputs of the first run are never inputs.
    tone(nest / "b.wav", 3)
    again = enhance(ckpt, nest, nest / "sub")
    assert again.returncode == 0, again.stderr
    assert sorted(snapshot(nest)) == ["a.wav", "b.wav", "sub/a.wav", "sub/b.wav"]


def test_an_output_that_would_be_an_input_is_refused(tmp_path, ckpt):
    # IN nest/sub, OUT nest: nest/sub/sub/x.wav would be written to nest/sub/x.wav, an input.
    tone(tmp_path / "nest" / "sub" / "x.wav", 1)
    tone(tmp_path / "nest" / "sub" / "sub" / "x.wav", 2)
    before = snapshot(tmp_path)
    proc = enhance(ckpt, tmp_path / "nest" / "sub", tmp_path / "nest")
    assert_one_error_line(proc, "would be both an input and an output", "choose an OUT outside")
    assert snapshot(tmp_path) == before


def test_an_existing_output_file_is_kept_unless_overwrite(tmp_path, ckpt):
    src = tone(tmp_path / "in.wav", 1)
    dst = tone(tmp_path / "out.wav", 2)
    before = digest(dst)
    assert_one_error_line(enhance(ckpt, src, dst), f"{dst}: exists", "--overwrite")
    assert digest(dst) == before
    proc = enhance(ckpt, "--overwrite", src, dst)
    assert proc.returncode == 0, proc.stderr
    assert digest(dst) != before and sf.info(dst).frames == sf.info(src).frames
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # no temp files


def test_a_folder_with_bad_files_writes_every_good_one_and_names_every_bad_one(tmp_path, ckpt):
    src = tmp_path / "in"
    tone(src / "a.wav", 1)
    (src / "b_corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    tone(src / "c.flac", 3)
    sf.write(src / "d_nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    tone(src / "sub" / "e.wav", 5)
    tone(tmp_path / "out" / "c.flac", 9)  # an earlier output: kept, and said so
    proc = enhance(ckpt, src, tmp_path / "out")
    assert proc.returncode == 2
    assert sorted(snapshot(tmp_path / "out")) == ["a.wav", "c.flac", "sub/e.wav"]
    lines = proc.stderr.strip().splitlines()
    assert all(ln.startswith(("warning: ", "error: ")) for ln in lines), proc.stderr
    assert any("b_corrupt.wav" in ln for ln in lines[:-1])
    assert any("d_nan.wav" in ln for ln in lines[:-1])
    assert any("c.flac: exists, kept" in ln for ln in lines[:-1])
    last = lines[-1]
    assert last.startswith("error: 2 file(s) could not be enhanced")
    assert "b_corrupt.wav" in last and "d_nan.wav" in last and "written: 2 other file(s)" in last
    assert "enhanced 2 file(s)" in proc.stdout and "kept 1 existing" in proc.stdout


def test_a_kill_while_writing_leaves_no_partial_file(tmp_path):
    dst = tmp_path / "out.wav"
    code = f"""
import time
from common.enhance_files import write_atomically
def slow(f):
    f.write(b"RIFF" + bytes(100000))
    f.flush()
    print("half written", flush=True)
    time.sleep(60)
write_atomically({str(dst)!r}, slow)
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "half written"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not dst.exists()  # only a hidden temporary file remains, never the final name
    assert all(p.name.startswith(".out.wav.") for p in tmp_path.iterdir())


def test_two_runs_into_one_folder_never_splice_files(tmp_path, ckpt):
    src = tmp_path / "in"
    for i in range(6):
        tone(src / f"{i}.flac", i, seconds=1.5)
    args = ["--overwrite", str(src), str(tmp_path / "out")]
    cmd = [sys.executable, "-m", "common", "enhance", "--ckpt", str(ckpt), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(cmd + args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    reference = enhance(ckpt, src, tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{i}.flac" for i in range(6)]
    for i in range(6):
        out = sf.read(tmp_path / "out" / f"{i}.flac")[0]  # decodes: not two files spliced
        np.testing.assert_array_equal(out, sf.read(tmp_path / "ref" / f"{i}.flac")[0])


# --- one line, never a traceback ---------------------------------------------------------------


def test_enhance_into_an_unwritable_place_is_one_line(tmp_path, ckpt):
    src = tone(tmp_path / "in.wav", 1)
    assert_one_error_line(enhance(ckpt, src, "/proc/x.wav"), "/proc/x.wav", "cannot write")
    text = tmp_path / "existing.txt"
    text.write_text("not a folder")
    assert_one_error_line(
        enhance(ckpt, src, text / "x.wav"), "existing.txt/x.wav", "existing.txt is a file"
    )
    assert text.read_text() == "not a folder"


def test_export_into_an_unwritable_place_is_one_line(ckpt):
    proc = cli("export", "--ckpt", str(ckpt), "--out", "/proc/x.onnx")
    assert_one_error_line(proc, "/proc/x.onnx", "cannot write")


@pytest.mark.parametrize("seconds", ["nan", "0", "-5", "1e12", "inf"])
def test_unusable_chunk_seconds_are_refused(tmp_path, ckpt, seconds):
    src = tone(tmp_path / "in.wav", 1)
    proc = enhance(ckpt, f"--chunk-seconds={seconds}", src, tmp_path / "out.wav")
    assert_one_error_line(proc, "--chunk-seconds", "from 1 to 120")
    assert not (tmp_path / "out.wav").exists()

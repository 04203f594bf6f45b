"""`enhance` on a folder of many short files (issue 23, folder speed): a command imports only
what it uses, `--help` still lists everything, and the faster folder path writes what the
one-file-at-a-time path wrote. Each command case runs `python -m common ...` as a user types it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import ONE_THREAD, run_python
from train_helpers import save_model_checkpoint

from common.cli import COMMANDS, build_parser
from common.models import build_model

SMALL_LITE = {"width": 16, "enc_channels": 8, "time_hidden": 16, "n_blocks": 1}
# What `evaluate` and the data tools need, and `enhance` must not load at start-up.
NOT_FOR_ENHANCE = ("pystoi", "pesq", "scipy.signal", "common.metrics", "matplotlib")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model("lite", **SMALL_LITE)
    return save_model_checkpoint(tmp_path_factory.mktemp("ckpt") / "lite.pt", model)


def cli(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_python(*python_flags, "-m", "common", *args, env=ONE_THREAD)


def short_files(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` noisy tones of different lengths (0.3-1.2 s), some at another rate, one stereo."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sr = 22050 if i % 4 == 3 else 16000
        t = np.arange(int(sr * rng.uniform(0.3, 1.2))) / sr
        wav = 0.2 * np.sin(2 * np.pi * rng.uniform(150, 900) * t)
        wav = (wav + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
        if i == 1:
            wav = np.stack([wav, 0.5 * wav], axis=1)
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        sf.write(folder / ("sub" if i % 3 == 0 else "") / f"{i:02d}.wav", wav, sr)
    return folder


def imported_modules(importtime_stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


# --- start-up: a command imports only what it uses -------------------------------------------


def test_help_lists_every_command_with_the_help_its_module_registers():
    proc = cli("--help")
    assert proc.returncode == 0, proc.stderr
    full = build_parser()  # every module imported and registered
    registered = {a.dest: a.help for a in full._subparsers._group_actions[0]._choices_actions}
    assert registered == {name: help_line for name, (_, help_line) in COMMANDS.items()}
    for name in registered:
        assert f"    {name} " in proc.stdout, proc.stdout


def test_enhance_help_lists_all_its_options():
    full = build_parser()
    enhance_parser = full._subparsers._group_actions[0].choices["enhance"]
    options = [s for a in enhance_parser._actions for s in a.option_strings]
    proc = cli("enhance", "--help")
    assert proc.returncode == 0, proc.stderr
    assert options and all(opt in proc.stdout for opt in options)
    assert "IN" in proc.stdout and "OUT" in proc.stdout


def test_an_unknown_command_is_one_error_line_naming_the_commands():
    proc = cli("enhanse", "x", "y")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "invalid choice" in lines[0]
    assert all(repr(name) in lines[0] for name in COMMANDS)


def test_enhance_does_not_import_the_metrics_or_scipy_signal(tmp_path, ckpt):
    short_files(tmp_path / "in", 3)
    proc = cli(
        "enhance", "--ckpt", str(ckpt), "--no-progress", str(tmp_path / "in"),
        str(tmp_path / "out"), python_flags=("-X", "importtime"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = imported_modules(proc.stderr)
    assert "common.enhance" in loaded  # the parsing above works
    assert not [m for m in loaded if m.startswith(NOT_FOR_ENHANCE)], sorted(loaded)
    # The other commands' modules are not imported either.
    others = [mod for name, (mod, _) in COMMANDS.items() if name != "enhance"]
    assert not loaded & set(others)


# --- the folder path writes what the one-file path writes --------------------------------------


def per_file_reference(enhancer, src: Path) -> np.ndarray:
    """What `enhance` wrote for one file before the folder path had a writer thread: the
    enhancer on the decoded file, clipped, in the input's format (16-bit here), decoded again."""
    wav, sr = sf.read(str(src), dtype="float32")
    out = np.clip(enhancer.enhance(wav, sr), -1.0, 1.0)
    ref = src.with_suffix(".ref.wav")
    sf.write(ref, out, sr, subtype=sf.info(str(src)).subtype)
    try:
        return sf.read(str(ref), dtype="int16")[0]
    finally:
        ref.unlink()


@pytest.mark.parametrize("backend", ["ckpt", "onnx"])
def test_a_folder_run_writes_exactly_what_enhancing_each_file_alone_gives(tmp_path, ckpt, backend):
    from common.enhance import load_enhancer
    from common.onnx_backend import load_onnx_enhancer

    src = short_files(tmp_path / "in", 9)
    if backend == "onnx":
        model = tmp_path / "model.onnx"
        proc = cli("export", "--ckpt", str(ckpt), "--out", str(model))
        assert proc.returncode == 0, proc.stderr
        args, enhancer = ["--onnx", str(model)], load_onnx_enhancer(model)
    else:
        args, enhancer = ["--ckpt", str(ckpt)], load_enhancer(ckpt, "cpu")
    proc = cli("enhance", *args, "--no-progress", str(src), str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    inputs = sorted(p.relative_to(src) for p in src.rglob("*.wav"))
    assert sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*")
                  if p.is_file()) == inputs  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command ran (another thread count rounds differently)
    try:
        for rel in inputs:
            written, sr = sf.read(str(tmp_path / "out" / rel), dtype="int16")
            assert sr == sf.info(str(src / rel)).samplerate
            np.testing.assert_array_equal(written, per_file_reference(enhancer, src / rel))
    finally:
        torch.set_num_threads(threads)

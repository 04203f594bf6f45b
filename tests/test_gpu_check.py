"""The GPU check's own tools (scripts/gpu_check.sh): carrying the training split, the
throughput table, and training where pesq is not installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import REPO, run_python

from builders.smoke import SmokeConfig, smoke_parameters
from common.corpus import real_corpus_splits

SR = 16000


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return run_python(*args, cwd=cwd)


def make_corpus(root: Path) -> Path:
    """speech/corpusA/<speaker>/ (10 speakers x 2 files) and noise/ (10 recordings)."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    for s in range(10):
        for u in range(2):
            wav = 0.2 * np.sin(2 * np.pi * (150 + 30 * s) * t) * (0.6 + 0.4 * np.sin(5 * t + u))
            path = root / "speech" / "corpusA" / f"spk{s}" / f"utt{u}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, SR)
    (root / "noise").mkdir()
    for k in range(10):
        sf.write(root / "noise" / f"n{k}.flac", 0.05 * rng.standard_normal(SR), SR)
    return root


def test_pack_carries_only_the_training_split_and_unpack_restores_it(tmp_path):
    data = make_corpus(tmp_path / "data")
    packed, restored = tmp_path / "packed", tmp_path / "restored"
    done = run("-m", "scripts.gpu_data", "pack", "--data", str(data), "--out", str(packed))
    assert done.returncode == 0, done.stderr
    train = real_corpus_splits(data, 0, exclude_noncommercial=True)["train"]
    expected = sorted(p.relative_to(data).with_suffix("") for p in train.speech + train.noise)
    assert sorted(p.relative_to(packed).with_suffix("") for p in packed.rglob("*.ogg")) == expected

    done = run("-m", "scripts.gpu_data", "unpack", "--src", str(packed), "--out", str(restored))
    assert done.returncode == 0, done.stderr
    flacs = sorted(restored.rglob("*.flac"))
    assert [p.relative_to(restored).with_suffix("") for p in flacs] == expected
    # Lossy, but the same speech: what the GPU trains on is this machine's training audio.
    # (Noise is coded harder: a waveform match is not what matters for it.)
    for path in [p for p in flacs if "speech" in p.parts][:3]:
        original, _ = sf.read(data / path.relative_to(restored))
        decoded, sr = sf.read(path)
        n = min(len(original), len(decoded))
        assert sr == SR and abs(len(decoded) - len(original)) < SR // 10
        err = original[:n] - decoded[:n]
        assert 10 * np.log10(np.sum(original[:n] ** 2) / np.sum(err**2)) > 15
    # No validation or test speaker of the original split reaches the GPU machine.
    held_out = {p.parent.name for s in ("val", "test") for p in real_corpus_splits(data)[s].speech}
    assert held_out and not held_out & {p.parent.name for p in flacs}


def test_pack_never_writes_into_a_folder_that_holds_files(tmp_path):
    data = make_corpus(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = run("-m", "scripts.gpu_data", "pack", "--data", str(data), "--out", str(out))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error:") and str(out) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"


def test_bench_gpu_prints_a_row_per_model_and_writes_json(tmp_path):
    out = tmp_path / "rows.json"
    done = run(
        "-m", "scripts.bench_gpu", "--models", "lite", "--steps", "1", "--batch-size", "1",
        "--segment-seconds", "0.25", "--device", "cpu", "--json", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| model | params | ms / step |" in done.stdout
    assert "| lite | 63,650 |" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["model"] == "lite" and rows[0]["ms_per_step"] > 0


def test_training_imports_without_pesq():
    # The GPU image has no pesq wheel; training never scores PESQ, so it must not need it.
    code = (
        "import sys; sys.modules['pesq'] = None\n"
        "import common.commands.train, common.run, common.train, common.experiment\n"
        "print('ok')"
    )
    done = run("-c", code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_smoke_device_reaches_the_notebook_overrides(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('recipe = "lite"\noverrides = {}')
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nbformat.write(nb, notebook)
    params = smoke_parameters(
        notebook, SmokeConfig(device="cuda"), tmp_path, tmp_path, tmp_path, tmp_path
    )
    assert params["overrides"]["train.device"] == "cuda"
    assert SmokeConfig().device == "cpu"  # `make smoke` stays on the CPU


def test_gpu_check_script_parses():
    done = subprocess.run(
        ["bash", "-n", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True
    )
    assert done.returncode == 0, done.stderr

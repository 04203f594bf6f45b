"""`make bench` plumbing: every system is scored on the same files, and the table shows them all."""

from pathlib import Path

import pytest
from conftest import REPO, run_python

from common.checkpoint import SHIPPED_CHECKPOINT


@pytest.mark.shared_data
def test_quality_table_scores_every_system_on_the_same_files(shared_data):
    from scripts.bench_export import pair_folders
    from scripts.bench_quality import markdown, score_systems

    quality = score_systems(
        {"identity": lambda x: x, "half level": lambda x: 0.5 * x},
        {"pairs": pair_folders(shared_data)},
    )
    block = quality["pairs"]
    rows = block["systems"]
    # Every pair of every folder under pairs/ (the README of ../shared/data lists 6 + 3 + 1).
    assert block["items"] == 10 and list(rows) == ["noisy", "identity", "half level"]
    # Passing the noisy input through unchanged must score exactly as the noisy input.
    assert rows["identity"] == pytest.approx(rows["noisy"])
    # SI-SDR ignores the level; a broken pairing or a swapped signal would not.
    assert rows["half level"]["si_sdr"] == pytest.approx(rows["noisy"]["si_sdr"], abs=1e-3)
    table = markdown(quality, {"identity": {"steps": 12, "train_seconds": 90.0}})
    assert "| identity | " in table and "12 steps in 1.5 CPU min" in table


@pytest.mark.shared_data
def test_the_training_step_profile_accounts_for_the_whole_step(shared_data, tmp_path, capsys):
    from common.recipes import apply_overrides, load_recipe
    from common.run import prepare_data
    from scripts.bench_train_step import PARTS, main, time_steps

    cfg = apply_overrides(load_recipe("lite"), {"data.root": str(shared_data)})
    cfg = apply_overrides(cfg, {"train.batch_size": 2, "data.segment_seconds": 1.0})
    parts = time_steps(cfg, prepare_data(cfg, tmp_path / "work"), steps=1, bf16=True)
    assert list(parts) == list(PARTS) and all(v > 0 for v in parts.values())
    # The command prints the table and the ratio it is run for.
    assert main(["--steps", "1", "--data", str(shared_data), "--work", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "| total |" in out and "bf16 autocast / fp32 step time:" in out


def test_a_finished_bench_run_of_the_same_command_is_reused(tmp_path, capsys):
    from scripts.bench_quality import Contender, train_under_budget

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        '[data]\nsource = "synthetic"\nsegment_seconds = 1.0\n[model]\nname = "lite"\n'
        "[train]\nepochs = 1\nbatch_size = 2\n"
    )
    c = Contender("tiny", str(recipe))
    out = tmp_path / "bench"
    first = train_under_budget(c, tmp_path, out, minutes=0.05)
    assert first["steps"] > 0 and Path(first["ckpt"]).is_file()
    again = train_under_budget(c, tmp_path, out, minutes=0.05)
    assert "reusing the finished run" in capsys.readouterr().out
    assert again == first
    # Another budget is another command: trained again, never mixed up with the first.
    other = train_under_budget(c, tmp_path, out, minutes=0.06)
    assert "training tiny" in capsys.readouterr().out and other["wall_seconds"] > 0
    # An edited recipe is another run too, under the same command.
    recipe.write_text(recipe.read_text().replace("segment_seconds = 1.0", "segment_seconds = 0.5"))
    train_under_budget(c, tmp_path, out, minutes=0.06)
    assert "training tiny" in capsys.readouterr().out


@pytest.mark.shared_data
def test_enhance_folder_timing_runs_the_command_for_both_back_ends(shared_data, tmp_path):

    import soundfile as sf
    import torch
    from train_helpers import save_model_checkpoint

    from common.models import build_model

    torch.manual_seed(0)
    ckpt = save_model_checkpoint(tmp_path / "lite.pt", build_model("lite"))
    cmd = ["-m", "scripts.bench_enhance", "--ckpt", str(ckpt), "--data", str(shared_data)]
    n_short = 3
    cmd += ["--work", str(tmp_path / "work"), "--minutes", "0.1", "--short-files", str(n_short)]
    done = run_python(*cmd, "--repeats", "1")
    assert done.returncode == 0, done.stderr
    assert "| PyTorch (--ckpt) |" in done.stdout and "| onnxruntime (--onnx) |" in done.stdout
    # The long folder links the speech files (nothing copied) and every one was enhanced.
    folder = tmp_path / "work" / "speech0.1min"
    links = sorted(folder.iterdir())
    assert links and all(p.is_symlink() for p in links)
    enhanced = tmp_path / "work" / "enhanced"
    assert sorted(p.name for p in (enhanced / folder.name).iterdir()) == [p.name for p in links]
    # The short folder: its files, 2-4 s of 16 kHz mono each, all enhanced; one row per back-end.
    short = tmp_path / "work" / f"short{n_short}"
    files = sorted(p.name for p in short.glob("*.wav"))
    assert len(files) == n_short
    for name in files:
        info = sf.info(str(short / name))
        assert info.samplerate == 16000 and info.channels == 1 and 2.0 <= info.duration <= 4.0
    assert sorted(p.name for p in (enhanced / short.name).iterdir()) == files
    rows = [ln for ln in done.stdout.splitlines() if ln.startswith(f"| {short.name} | {n_short} |")]
    assert len(rows) == 2


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_dnsmos_bench_runs_on_its_own_and_prints_every_system(shared_data, tmp_path):
    import json

    from common.audio import audio_info, list_audio

    # One short recording of noisy_only/, linked where the bench looks for it.
    shortest = min(list_audio(shared_data / "noisy_only"), key=lambda p: audio_info(p).frames)
    data = tmp_path / "data"
    (data / "noisy_only").mkdir(parents=True)
    (data / "noisy_only" / shortest.name).symlink_to(shortest)
    proc = run_python(
        "-m", "scripts.bench_dnsmos", "--data", str(data), "--out", str(tmp_path / "out"),
        "--ckpt", str(REPO / SHIPPED_CHECKPOINT), "--contenders",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "dnsmos.json").read_text())
    systems = ["noisy input", "noisereduce", "shipped lite-v2.pt"]
    assert list(result["systems"]) == systems and result["files"] == 1
    for label in systems:
        assert f"| {label} | " in proc.stdout
        assert result["systems"][label]["n"] == 1 and not result["systems"][label]["failures"]

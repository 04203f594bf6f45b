"""`make bench` plumbing: every system is scored on the same files, and the table shows them all."""

import pytest


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
    from common.config import apply_overrides, load_recipe
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

"""One run configuration: recipes load, overrides apply by dotted name, mistakes are one line,
and the `lite` recipe is the one the shipped checkpoint was trained with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import assert_trained_with

from common.config import config_dict, config_from_dict
from common.errors import UserError
from common.models import build_model
from common.recipes import apply_overrides, load_recipe, parse_override, recipe_kernel, recipe_names

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_loads_builds_its_model_and_round_trips(name: str):
    cfg = load_recipe(name)
    assert cfg.recipe == name and cfg.description.strip()
    kernel = recipe_kernel(name)
    assert len(kernel["slug"]) >= 5 and len(kernel["title"]) >= 5
    build_model(cfg.model.name, n_freq=cfg.stft.n_freq, **cfg.model.settings)
    assert config_from_dict(config_dict(cfg)) == cfg  # what checkpoints store reloads exactly


def test_the_team_runs_and_the_best_recipes_are_all_there():
    names = set(recipe_names())
    assert {"crn-v2", "dpt-v2", "transformer-r3"} <= names  # the history, as it ran
    assert {"crn", "transformer", "dpt", "lite"} <= names  # the best known recipe of each model


def test_overrides_replace_fields_by_dotted_name_and_keep_types():
    cfg = load_recipe("lite")
    out = apply_overrides(
        cfg,
        dict(
            [
                parse_override("train.epochs=2"),
                parse_override("train.lr=1e-3"),
                parse_override("model.settings.width=32"),
                parse_override("data.source=synthetic"),
                parse_override("train.max_minutes=none"),
            ]
        ),
    )
    assert (out.train.epochs, out.train.lr, out.train.max_minutes) == (2, 1e-3, None)
    assert isinstance(out.train.lr, float) and out.model.settings == {"width": 32}
    assert out.data.source == "synthetic" and cfg.data.source == "mix"  # a copy
    assert out.data.snr_db == (0.0, 20.0) and isinstance(out.data.snr_db, tuple)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lr": "fast"}, "train.lr='fast': expected a value like"),
        ({"train.learning_rate": 1.0}, "train.learning_rate: unknown setting"),
        ({"optimizer.lr": 1.0}, "'optimizer.lr': unknown section"),
        ({"data.source": "youtube"}, "data.source='youtube': use one of"),
        ({"train.batch_size": 0}, "train.batch_size=0: must be a whole number from 1"),
    ],
)
def test_a_bad_override_is_one_line_naming_the_setting(overrides: dict, message: str):
    with pytest.raises(UserError, match=message) as info:
        apply_overrides(load_recipe("lite"), overrides)
    assert "\n" not in str(info.value)


def test_a_bad_recipe_file_is_named(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'many'\n")
    with pytest.raises(UserError, match=f"{bad}: train.epochs='many'"):
        load_recipe(str(bad))
    with pytest.raises(UserError, match="nosuch: no recipe .*nosuch.toml; recipes: crn"):
        load_recipe("nosuch")


def test_the_lite_recipe_is_the_one_the_shipped_checkpoint_was_trained_with():
    assert_trained_with(load_recipe("lite"), REPO / "checkpoints" / "lite-dev.pt")


def test_lite_v2_pt_was_trained_with_its_recipe_for_its_whole_budget():
    path = REPO / "checkpoints" / "lite-v2.pt"
    cfg = load_recipe("lite-v2")
    stored = torch.load(path, map_location="cpu", weights_only=True)
    # Trained in two sittings, resumed exactly from last.pt (30 + 90 CPU minutes): a checkpoint
    # stores the budget of its last sitting and the CPU seconds of all of them.
    last_sitting = stored["train_config"]["max_minutes"]
    assert_trained_with(apply_overrides(cfg, {"train.max_minutes": last_sitting}), path)
    assert stored["train_seconds"] >= 0.99 * 60 * cfg.train.max_minutes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.batch_size": 0}, "train.batch_size=0: must be a whole number from 1"),
        ({"data.segment_seconds": float("nan")}, "data.segment_seconds=nan: must be a finite"),
        ({"stft.n_fft": 0}, "stft.n_fft=0: must be a whole number from 8"),
        ({"loss.si_sdr": float("inf")}, "loss.si_sdr=inf: must be a finite number"),
        ({"model.settings": {"width": float("nan")}}, "model.settings.width=nan"),
    ],
)
def test_a_notebooks_overrides_are_checked_naming_the_field(overrides: dict, message: str):
    """What a notebook's parameters cell goes through (`common.experiment.notebook_config`)."""
    from common.experiment import Session, notebook_config

    with pytest.raises(UserError, match=message) as info:
        notebook_config("lite", overrides)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="max_minutes=nan: must be a finite number"):
        Session("lite", max_minutes=float("nan"))


def test_the_configuration_is_read_without_training_model_or_audio_code():
    # Builders, the CLI's argument checks and a notebook's parameters cell read configurations;
    # none of them should pay for (or depend on) torch and the training code to do it.
    probe = "import sys, common.config; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = {"torch", "numpy", "common.train", "common.losses", "common.audio", "common.models"}
    assert not heavy & set(loaded), sorted(heavy & set(loaded))

"""Kaggle kernel metadata: assembled from kernel-metadata/ and validated like `kaggle kernels push`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from builders.build import notebook_names
from builders.metadata import (
    OWN_DATASET_SLUG,
    PLACEHOLDER_USERNAME,
    kaggle_username,
    kernel_metadata,
    require_username,
    validate_metadata,
)
from common.errors import UserError

REPO = Path(__file__).resolve().parents[1]
NAMES = notebook_names(REPO)  # every recipe, evaluate and vad (+ _example's own metadata)


@pytest.fixture(autouse=True)
def no_kaggle_account(monkeypatch, tmp_path: Path) -> None:
    """Tests never see the developer's own Kaggle settings."""
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle-config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def kernel_dir_with(tmp_path: Path, meta: dict) -> Path:
    (tmp_path / meta["code_file"]).write_text(json.dumps({"cells": [], "metadata": {}}))
    return tmp_path


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_metadata_is_valid(name: str, tmp_path: Path) -> None:
    meta = kernel_metadata(name, "someone")
    validate_metadata(meta, kernel_dir_with(tmp_path, meta))
    assert meta["id"].startswith("someone/")
    assert meta["code_file"] == f"{name}.ipynb"


def test_defaults_give_gpu_internet_and_the_dataset() -> None:
    meta = kernel_metadata("crn-v2", "someone")  # the team's run: the paired dataset
    assert meta["kernel_type"] == "notebook" and meta["language"] == "python"
    assert meta["enable_gpu"] is True and meta["machine_shape"] == "NvidiaTeslaT4"
    assert meta["enable_internet"] is True
    assert meta["dataset_sources"] == ["earth16/libri-speech-noise-dataset"]
    assert meta["title"] == "Lightweight Speech Enhancement: CRN v2"  # from the recipe


@pytest.mark.parametrize("name", ["dpt", "crn", "transformer", "lite-v2", "lite-v2-gpu", "lite"])
def test_the_best_recipes_attach_only_the_public_dataset(name: str) -> None:
    # A new account has nothing else: these train on the public pairs, remixed (common.remix).
    meta = kernel_metadata(name, "newuser")
    assert meta["dataset_sources"] == ["earth16/libri-speech-noise-dataset"]


def test_a_recipe_wanting_your_own_data_says_so_in_one_field(tmp_path: Path) -> None:
    shutil.copytree(REPO / "kernel-metadata", tmp_path / "kernel-metadata")
    (tmp_path / "recipes").mkdir()
    recipe = (REPO / "recipes" / "lite-v2.toml").read_text()
    table = f'[kernel]\ndataset_sources = ["{OWN_DATASET_SLUG}"]\n'
    own = recipe.replace("[kernel]\n", table, 1)
    assert own != recipe
    (tmp_path / "recipes" / "own.toml").write_text(own)
    # A bare slug means the user's own dataset (`make upload-data` creates it).
    meta = kernel_metadata("own", "someone", repo=tmp_path)
    assert meta["dataset_sources"] == [f"someone/{OWN_DATASET_SLUG}"]


def test_bare_kernel_sources_get_the_owner() -> None:
    meta = kernel_metadata("evaluate", "someone")
    assert meta["kernel_sources"]
    assert all(s.startswith("someone/") for s in meta["kernel_sources"])


def test_username_comes_from_argument_then_env_then_kaggle_json(
    monkeypatch, tmp_path: Path
) -> None:
    assert kaggle_username() is None
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "fromfile", "key": "x"}))
    assert kaggle_username() == "fromfile"
    monkeypatch.setenv("KAGGLE_USERNAME", "fromenv")
    assert kaggle_username() == "fromenv"
    assert kaggle_username("explicit") == "explicit"


def test_without_username_a_placeholder_builds_but_cannot_push(tmp_path: Path) -> None:
    meta = kernel_metadata("crn")
    assert meta["id"] == f"{PLACEHOLDER_USERNAME}/lightweight-speech-enhancement-crn"
    validate_metadata(meta, kernel_dir_with(tmp_path, meta))
    with pytest.raises(UserError, match="no Kaggle user name: set KAGGLE_USERNAME"):
        require_username(meta)
    require_username(kernel_metadata("crn", "someone"))


def test_missing_or_broken_notebook_metadata_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"kernel-metadata/nope.json: not found"):
        kernel_metadata("nope", "someone")
    (tmp_path / "kernel-metadata").mkdir()
    (tmp_path / "kernel-metadata" / "_defaults.json").write_text("{}")
    (tmp_path / "kernel-metadata" / "x.json").write_text('{"slug": "abcdef",}')
    with pytest.raises(UserError, match=r"x.json:1: invalid JSON"):
        kernel_metadata("x", "someone", repo=tmp_path)
    (tmp_path / "kernel-metadata" / "x.json").write_text('{"title": "Some title"}')
    with pytest.raises(UserError, match=r'x.json: needs a "slug" string'):
        kernel_metadata("x", "someone", repo=tmp_path)


BAD_FIELDS = [
    ({"title": "Shrt"}, "title 'Shrt' must be a string of at least 5 characters"),
    ({"title": None}, "title None must be a string"),
    ({"code_file": ""}, '"code_file" must name the notebook file'),
    ({"code_file": "other.ipynb"}, "code_file 'other.ipynb' is not in"),
    ({"id": None}, '"id" \\("owner/slug"\\) must be set'),
    (
        {"id": "someone/lightweight-speech-enhancement-crn/3"},
        "must be 'owner/slug' \\(no version\\)",
    ),
    ({"id": "someone/crn", "title": "Crn a"}, "the kernel slug must be at least 5 characters"),
    ({"id": "/lightweight-speech-enhancement-crn"}, "must look like 'owner/kernel-slug'"),
    ({"title": "Another title entirely"}, "gives the slug 'another-title-entirely', not"),
    ({"language": "julia"}, "language 'julia' must be one of"),
    ({"kernel_type": "app"}, "kernel_type 'app' must be one of"),
    ({"enable_gpu": "yes"}, "enable_gpu must be true or false, not 'yes'"),
    ({"is_private": 1}, "is_private must be true or false"),
    ({"enable_tpu": True}, "enable_gpu and enable_tpu are both true"),
    (
        {"dataset_sources": "earth16/libri-speech-noise-dataset"},
        '"dataset_sources" must be a list of strings',
    ),
    (
        {"dataset_sources": ["libri-speech-noise-dataset"]},
        "dataset_sources entry .* must look like 'owner/dataset-slug'",
    ),
    ({"kernel_sources": ["someone/abc"]}, "kernel_sources entry .* at least 5 characters"),
    ({"kernel_sources": ["nobody"]}, "kernel_sources entry 'nobody' must look like"),
    ({"model_sources": ["a/b/c/d/latest"]}, "model_sources entry .* integer version"),
    ({"docker_image_pinning_type": "newest"}, "docker_image_pinning_type 'newest' must be one of"),
    ({"machine_shape": "T4"}, "machine_shape 'T4' must be one of"),
    ({"machine_shape": "NvidiaTeslaP100"}, "'NvidiaTeslaP100' is retired .* use 'NvidiaTeslaT4'"),
    ({"enable_gpus": True}, "unknown key 'enable_gpus'"),
]


@pytest.mark.parametrize(("change", "message"), BAD_FIELDS, ids=[m[:30] for _, m in BAD_FIELDS])
def test_validation_catches_each_bad_field(tmp_path: Path, change: dict, message: str) -> None:
    meta = kernel_metadata("crn", "someone")
    kernel_dir = kernel_dir_with(tmp_path, meta)
    validate_metadata(meta, kernel_dir)  # valid before the change
    meta.update(change)
    with pytest.raises(UserError, match=message) as info:
        validate_metadata(meta, kernel_dir, origin="kernel-metadata/crn.json")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(
        f"{kernel_dir / 'kernel-metadata.json'} (from kernel-metadata/crn.json): "
    )


def test_notebook_code_file_must_be_json(tmp_path: Path) -> None:
    meta = kernel_metadata("crn", "someone")
    (tmp_path / meta["code_file"]).write_text("# %% not a notebook\n")
    with pytest.raises(UserError, match="is not notebook JSON"):
        validate_metadata(meta, tmp_path)


def test_string_booleans_are_accepted_like_the_cli(tmp_path: Path) -> None:
    meta = kernel_metadata("crn", "someone") | {"enable_internet": "false", "is_private": "True"}
    validate_metadata(meta, kernel_dir_with(tmp_path, meta))

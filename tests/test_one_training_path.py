"""The command line and the notebooks train through one path: the same recipe and seed give the
same history; the notebook `make push-lite` pushes carries the shipped checkpoint's recipe."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import nbformat
import pytest
from conftest import run_common
from train_helpers import assert_trained_with

from builders.build import REPO, build_kernel
from builders.generated import library_files
from builders.parameters import parameter_values
from builders.smoke import execute, isolated_kernel
from common.config import config_dict, config_from_dict
from common.recipes import apply_overrides, load_recipe

# A few steps of the `lite` recipe on the synthetic corpus: fewer than the steps a time budget
# needs before it reshapes the schedule, so both runs follow the recipe's schedule exactly.
TINY = {
    "data.source": "synthetic",
    "data.segment_seconds": 1.0,
    "data.max_train_pairs": 8,
    "data.max_test_pairs": 1,
    "evaluate.eval_seconds": 2.0,
    "train.epochs": 2,
    "train.batch_size": 2,
    "train.num_workers": 0,
    "train.device": "cpu",
    "train.progress": False,
}
COMPARED = ("epoch", "step", "train_loss", "val_loss", "val_si_sdr", "val_si_sdr_noisy", "lr")


def history_values(path: Path) -> list[dict]:
    history = json.loads(path.read_text())["history"]
    return [{k: entry.get(k) for k in COMPARED} for entry in history]


@pytest.mark.slow
def test_the_cli_and_the_built_notebook_train_the_same_run(tmp_path: Path):
    cli_out = tmp_path / "cli"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    proc = run_common("train", "--recipe", "lite", "--out", str(cli_out), *sets, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    notebook = build_kernel("lite") / "lite.ipynb"
    nb_out, cwd = tmp_path / "notebook", tmp_path / "cwd"
    cwd.mkdir()
    params = {"overrides": TINY, "output_dir": str(nb_out), "nproc": 1}
    with isolated_kernel(tmp_path / "kernel") as kernel:
        execute(notebook, tmp_path / "executed.ipynb", params, kernel, cwd, timeout_s=240)

    cli, nb = history_values(cli_out / "history.json"), history_values(nb_out / "history.json")
    assert len(cli) == TINY["train.epochs"] and all(e["train_loss"] is not None for e in cli)
    assert nb == cli
    # Both stored the same configuration (the notebook's budget aside).
    stored = {
        name: json.loads((out / "history.json").read_text())["run_config"]
        for name, out in (("cli", cli_out), ("notebook", nb_out))
    }
    for run in stored.values():
        run["train"].pop("max_minutes")
        run["data"].pop("work_dir")
    assert stored["cli"] == stored["notebook"]
    assert stored["cli"] == {
        **config_dict(apply_overrides(load_recipe("lite"), TINY)),
        "train": stored["cli"]["train"],
        "data": stored["cli"]["data"],
    }


def test_the_notebook_make_push_lite_pushes_carries_the_shipped_checkpoints_recipe():
    notebook = nbformat.read(build_kernel("lite") / "lite.ipynb", as_version=4)
    values = parameter_values(notebook.cells)
    assert values["recipe"] == "lite" and values["overrides"] == {}
    shipped = tomllib.loads(library_files(notebook)["recipes/lite.toml"])
    shipped.pop("kernel")
    cfg = config_from_dict(shipped)

    assert_trained_with(cfg, REPO / "checkpoints" / "lite-dev.pt")

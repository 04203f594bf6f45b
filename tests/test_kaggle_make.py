"""The Kaggle loop exactly as a user types it: `make push-NAME`, `make wait-NAME`, ... as
subprocesses, driving the real `kaggle` CLI against the loopback fake server (tests/kaggle_server.py).

The fake answers like the real service where that hurts: 403 for a kernel that does not exist
yet, and status and outputs that lag one version behind right after a push.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from kaggle_server import FakeKaggle

from builders.build import notebook_names
from builders.metadata import OWN_DATASET_SLUG
from builders.registry import load_registry
from tests.e2e.page_check import REPORT_SECTIONS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_names(REPO)  # every recipe, evaluate and vad
OPS = {
    "push": "push {}",
    "resume": "push {} --resume",
    "status": "status {}",
    "wait": "wait {} --poll",
    "pull": "pull {}",
}


@pytest.fixture(scope="module")
def set_up() -> None:
    """`make setup` once, outside the loopback-only environment (a no-op when up to date)."""
    proc = subprocess.run(["make", "-s", "setup"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def make(target: str, env: dict[str, str], *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", target, *variables],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("name", NOTEBOOKS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_kaggle_target_runs_its_command_when_typed(op: str, name: str):
    # A .PHONY target never gets a plain pattern rule: `make push-dpt` once did nothing, exit 0.
    proc = subprocess.run(
        ["make", "-n", f"{op}-{name}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "Nothing to be done" not in proc.stdout
    assert f"-m builders.kaggle {OPS[op].format(name)}" in proc.stdout


def test_an_unknown_notebook_is_one_error_line():
    proc = subprocess.run(
        ["make", "-s", "push-nosuchnotebook"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "error: no notebook 'nosuchnotebook'" in proc.stderr and "lite" in proc.stderr


@pytest.mark.slow
def test_push_wait_push_pull_report_resume_through_make(set_up, tmp_path: Path):
    with FakeKaggle(unknown_kernel_code=403, stale_calls=2, timeout_s=900) as fake:
        env = {**fake.client_env(tmp_path / "home"), "RESULTS_DIR": str(tmp_path / "results")}
        results = tmp_path / "results"
        ref = "tester/lightweight-speech-enhancement-lite"

        first = make("push-lite", env)
        assert first.returncode == 0, first.stderr
        assert "not on Kaggle yet: pushing it as a new kernel" in first.stdout  # 403, not 404
        assert f"pushed lite v1 as {ref}" in first.stdout

        status = make("status-lite", env)
        assert status.returncode == 0, status.stderr
        assert "lite v1" in status.stdout

        waited = make("wait-lite", env, "POLL=0.05")
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.rstrip().endswith("COMPLETE")

        second = make("push-lite", env)  # saves v1's outputs before v2 makes them unreachable
        assert second.returncode == 0, second.stderr
        assert "lite v1: saving its outputs before the new push" in second.stdout
        assert "pushed lite v2" in second.stdout

        # Version-labelled status: the lagging answers about v1 never end v2's wait.
        waited = make("wait-lite", env, "POLL=0.05")
        assert waited.returncode == 0, waited.stderr
        states = [ln.rsplit(": ", 1)[-1] for ln in waited.stdout.splitlines() if "+" in ln]
        assert states[0] in ("QUEUED", "RUNNING") and states[-1] == "COMPLETE"

        pulled = make("pull-lite", env)
        assert pulled.returncode == 0, pulled.stderr
        report = make("report", env)
        assert report.returncode == 0, report.stderr

        for version in (1, 2):
            summary = json.loads((results / "lite" / f"v{version}" / "summary.json").read_text())
            assert summary["kernel"] == f"{ref}/{version}"  # each version's own outputs
        board = (results / "LEADERBOARD.md").read_text()
        assert "| lite v1 " in board and "| lite v2 " in board
        # The reviewers' page over the two pulled versions: both compared, paired (same files),
        # with their pulled listening examples.
        assert f"wrote {results / 'report.html'}: 2 run(s) compared, 0 left out" in report.stdout
        page = (results / "report.html").read_text()
        for section in REPORT_SECTIONS:
            assert section in page
        assert page.count("<audio") == 2 * 4  # 2 files x (noisy, v1, v2, clean)
        assert "not paired:" not in page

        resumed = make("resume-lite", env)
        assert resumed.returncode == 0, resumed.stderr
        assert fake.calls("SaveKernel")[-1].body["kernelDataSources"] == [ref]
        runs = load_registry(results).runs
        assert [(r.version, r.resume_from) for r in runs] == [(1, None), (2, None), (3, 2)]
        assert all(r.pulled_at for r in runs[:2])


@pytest.mark.slow
def test_push_with_an_invalid_dataset_source_stops_before_anything_is_pushed(set_up, tmp_path):
    # The real service only prints "The following are not valid dataset sources" and runs anyway.
    with FakeKaggle(unknown_kernel_code=403, datasets=(), timeout_s=120) as fake:
        env = {**fake.client_env(tmp_path / "home"), "RESULTS_DIR": str(tmp_path / "results")}
        proc = make("push-lite", {**env, "MAKEFLAGS": "-s"})
        assert proc.returncode != 0
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "earth16/libri-speech-noise-dataset" in errors[0]
        assert "Traceback" not in proc.stderr
        assert fake.calls("SaveKernel") == []
        assert not os.path.exists(tmp_path / "results" / "registry.json")


@pytest.mark.slow
def test_a_new_account_pushes_the_best_recipes_with_nothing_but_credentials(set_up, tmp_path):
    # The fake holds only public datasets: no `lse-speech-noise` of the user's own.
    public = "earth16/libri-speech-noise-dataset"
    with FakeKaggle(unknown_kernel_code=403, datasets=(public,), timeout_s=200) as fake:
        env = {**fake.client_env(tmp_path / "home"), "RESULTS_DIR": str(tmp_path / "results")}
        for name in ("dpt", "lite-v2"):
            proc = make(f"push-{name}", env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert f"pushed {name} v1" in proc.stdout
        pushed = fake.calls("SaveKernel")
        assert [c.body["datasetDataSources"] for c in pushed] == [[public], [public]]
        assert [(r.name, r.version) for r in load_registry(tmp_path / "results").runs] == [
            ("dpt", 1),
            ("lite-v2", 1),
        ]


@pytest.mark.slow
def test_a_recipe_with_your_own_data_not_uploaded_says_how_to_upload_it(set_up, tmp_path):
    recipe = REPO / "recipes" / "own-data-test.toml"
    text = (REPO / "recipes" / "lite-v2.toml").read_text()
    own = f'[kernel]\ndataset_sources = ["{OWN_DATASET_SLUG}"]\n'
    text = text.replace("[kernel]\n", own, 1)
    recipe.write_text(text.replace("lite-v2", "own-data-test").replace("Lite v2", "Own Data Test"))
    try:
        with FakeKaggle(unknown_kernel_code=403, timeout_s=120) as fake:
            env = {**fake.client_env(tmp_path / "home"), "RESULTS_DIR": str(tmp_path / "results")}
            proc = make("push-own-data-test", {**env, "MAKEFLAGS": "-s"})
            assert proc.returncode == 2
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1 and f"'tester/{OWN_DATASET_SLUG}'" in errors[0]
            assert f"make upload-data DATA=FOLDER DATASET={OWN_DATASET_SLUG}" in errors[0]
            assert fake.calls("SaveKernel") == []
    finally:
        recipe.unlink()

"""Kaggle operations against a loopback fake Kaggle server, driven through the real `kaggle` CLI.

Every CLI call goes to 127.0.0.1 (KAGGLE_API_ENVIRONMENT=LOCALHOST + HTTP(S)_PROXY to the fake
server) with a temporary HOME: nothing here can reach the real Kaggle.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kaggle_server import FakeKaggle

from builders import kaggle as ops
from builders.kaggle_cli import (
    CREDENTIALS_HELP,
    KaggleCli,
    find_credentials,
    parse_push_output,
    parse_status_output,
)
from builders.outputs import check_output_file
from builders.parameters import INJECTED_TAG, tagged_cells
from builders.registry import load_registry
from common.errors import UserError

SLUG = "lse-ops-test-notebook"
REF = f"tester/{SLUG}"


@pytest.fixture
def fake():
    with FakeKaggle(timeout_s=120) as server:
        yield server


@pytest.fixture
def cli(fake: FakeKaggle, tmp_path: Path) -> KaggleCli:
    return KaggleCli(env=fake.client_env(tmp_path / "home"), timeout_s=60)


@pytest.fixture
def cfg(tmp_path: Path) -> ops.OpsConfig:
    return ops.OpsConfig(results_dir=tmp_path / "results", poll_s=1.0, max_poll_s=3.0, backoff=2.0)


def fake_build(root: Path, calls: list[str] | None = None):
    """A stand-in for builders.build.build_kernel: a valid kernel folder with a parameters cell."""

    def build(name: str, username: str | None) -> Path:
        if calls is not None:
            calls.append(name)
        kernel_dir = root / "kernels" / name
        kernel_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "id": f"{username}/{SLUG}",
            "title": "LSE ops test notebook",
            "code_file": f"{name}.ipynb",
            "language": "python",
            "kernel_type": "notebook",
            "is_private": True,
            "enable_gpu": True,
            "enable_internet": True,
            "machine_shape": "NvidiaTeslaT4",
            "dataset_sources": ["earth16/libri-speech-noise-dataset"],
            "kernel_sources": [],
        }
        cells = [
            {
                "cell_type": "code",
                "id": "params",
                "metadata": {"tags": ["parameters"]},
                "execution_count": None,
                "outputs": [],
                "source": "epochs = 2\nresume_checkpoint = None\n",
            },
            {
                "cell_type": "code",
                "id": "body",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": "print(epochs)\n",
            },
        ]
        notebook = {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (kernel_dir / "kernel-metadata.json").write_text(json.dumps(meta))
        (kernel_dir / f"{name}.ipynb").write_text(json.dumps(notebook))
        return kernel_dir

    return build


def no_sleep(_: float) -> None:
    pass


# --------------------------------------------------------------------------- CLI quirks (parsing)


def test_push_output_error_is_refused_although_the_cli_exits_0():
    with pytest.raises(UserError, match="rejected the push: Notebook title too short"):
        parse_push_output("Kernel push error: Notebook title too short\n")
    ok = parse_push_output(
        "Kernel version 7 successfully pushed.  Please check progress at https://k/code/a/b\n"
    )
    assert (ok.version, ok.url) == (7, "https://k/code/a/b")


def test_status_output_with_enum_class_name_and_failure_message():
    st = parse_status_output(
        'a/b has status "KernelWorkerStatus.ERROR"\nFailure message: "CUDA out of memory"\n'
    )
    assert (st.state, st.failure_message, st.finished) == ("ERROR", "CUDA out of memory", True)
    assert not parse_status_output('a/b has status "KernelWorkerStatus.RUNNING"\n').finished


def test_credentials_are_found_the_way_the_cli_looks_for_them(tmp_path: Path):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    env = {"HOME": str(home)}
    with pytest.raises(UserError) as info:
        find_credentials(env)
    message = str(info.value)
    assert "\n" not in message
    for hint in ("~/.kaggle/kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        assert hint in message
    assert find_credentials({**env, "KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}).username == "u"
    (home / ".kaggle" / "kaggle.json").write_text('{"username": "me", "key": "x"}')
    assert find_credentials(env).username == "me"
    assert find_credentials({**env, "KAGGLE_API_TOKEN": "t"}).source == "KAGGLE_API_TOKEN"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("last.pt", b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "storage"),
        ("best.pt", b"\x00not a checkpoint", "checkpoint"),
        ("summary.json", b"<!DOCTYPE html><html>502</html>", "HTML"),
        ("summary.json", b'{"metrics": ', "JSON"),
        ("history.json", b'{"code": 403, "message": "Forbidden"}', "API error"),
    ],
)
def test_downloads_that_are_not_what_their_name_says_are_refused(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=reason):
        check_output_file(path)


# --------------------------------------------------------------------------- push


def test_push_sends_the_built_self_contained_notebook_and_records_the_version(fake, cli, cfg):
    from builders.build import build_kernel

    run = ops.push("_example", cfg=cfg, cli=cli, build=build_kernel)
    meta = json.loads(
        (ops.REPO / "build" / "kernels" / "_example" / "kernel-metadata.json").read_text()
    )
    (sent,) = fake.calls("SaveKernel")
    body = sent.body
    assert body["slug"] == meta["id"] == run.kernel
    assert meta["id"].startswith("tester/")
    assert body["enableGpu"] is True and meta["enable_gpu"] is True
    assert body["enableInternet"] == meta["enable_internet"]
    assert body["machineShape"] == meta["machine_shape"]
    assert body["datasetDataSources"] == meta["dataset_sources"]
    assert body["datasetDataSources"], "the notebook needs its dataset attached"
    notebook = json.loads(body["text"])
    assert notebook["metadata"]["kernelspec"]["name"]
    # The pushed notebook carries the common modules it imports (Kaggle has no repository).
    from builders.generated import library_files

    shipped = library_files(notebook)
    assert "def stft(" in shipped["common/audio.py"]
    assert not any(path.startswith("common/commands") for path in shipped)

    registry = load_registry(cfg.results_dir)
    (recorded,) = registry.runs
    assert (recorded.name, recorded.version, recorded.kernel) == ("_example", 1, meta["id"])
    assert recorded.url and recorded.pushed_at and len(recorded.git_commit) >= 7
    assert recorded.config["parameters"]["max_test_pairs"] == 2
    assert recorded.config["enable_gpu"] is True


def test_rejected_push_fails_and_records_nothing(fake, cli, cfg, tmp_path):
    fake.reject_next_push("Notebook title is too short")
    with pytest.raises(UserError, match="Notebook title is too short"):
        ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    assert load_registry(cfg.results_dir).runs == []


def test_push_saves_the_previous_outputs_before_a_new_version_hides_them(fake, cli, cfg, tmp_path):
    build = fake_build(tmp_path)
    fake.plan_next_run(statuses=("COMPLETE",))
    ops.push("nb", cfg=cfg, cli=cli, build=build)
    second = ops.push("nb", cfg=cfg, cli=cli, build=build)
    assert second.version == 2

    calls = [r.call.rsplit("/", 1)[-1] for r in fake.requests if r.method == "POST"]
    last_list = len(calls) - 1 - calls[::-1].index("ListKernelSessionOutput")
    assert last_list < len(calls) - 1 - calls[::-1].index("SaveKernel")
    summary = json.loads((cfg.results_dir / "nb" / "v1" / "summary.json").read_text())
    assert summary["kernel"] == f"{REF}/1"  # the outputs of version 1, not of version 2
    first = load_registry(cfg.results_dir).find("nb", 1)
    assert first.pulled_at and first.status == "COMPLETE" and "last.pt" in first.files


def test_push_keeps_the_outputs_of_a_version_pushed_from_elsewhere(fake, cli, cfg, tmp_path):
    fake.add_existing_kernel(REF)  # e.g. run from the Kaggle web editor: not in the registry
    run = ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    assert run.version == 2
    (kept,) = [r for r in load_registry(cfg.results_dir).runs if r.version is None]
    assert kept.pulled_dir.startswith("nb/v0-unknown-") and "summary.json" in kept.files
    summary = json.loads((cfg.results_dir / kept.pulled_dir / "summary.json").read_text())
    assert summary["kernel"] == f"{REF}/1"


def test_push_resume_attaches_the_kernel_and_sets_the_checkpoint(fake, cli, cfg, tmp_path):
    build = fake_build(tmp_path)
    fake.plan_next_run(statuses=("COMPLETE",))
    ops.push("nb", cfg=cfg, cli=cli, build=build)
    ops.pull("nb", cfg=cfg, cli=cli)
    run = ops.push("nb", resume=True, cfg=cfg, cli=cli, build=build)

    body = fake.calls("SaveKernel")[-1].body
    assert body["kernelDataSources"] == [REF]
    notebook = json.loads(body["text"])
    injected = [notebook["cells"][i] for i in tagged_cells(notebook["cells"], INJECTED_TAG)]
    assert injected[0]["source"].count(f"resume_checkpoint = '/kaggle/input/{SLUG}/last.pt'")
    assert notebook["cells"].index(injected[0]) == 1  # right after the parameters cell
    assert run.resume_from == 1
    assert run.config["parameters"]["resume_checkpoint"] == f"/kaggle/input/{SLUG}/last.pt"


def test_push_without_credentials_fails_in_one_line_and_changes_nothing(fake, cfg, tmp_path):
    built: list[str] = []
    cli = KaggleCli(env=fake.client_env(tmp_path / "home", credentials=False))
    with pytest.raises(UserError) as info:
        ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path, built))
    assert str(info.value) == CREDENTIALS_HELP
    assert built == [] and fake.requests == [] and not cfg.results_dir.exists()


def test_main_without_credentials_prints_one_error_line(fake, tmp_path, monkeypatch, capsys):
    for key, value in fake.client_env(tmp_path / "home", credentials=False).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    results = tmp_path / "results"
    assert ops.main(["--results", str(results), "push", "dpt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: no Kaggle credentials")
    assert not results.exists() and fake.requests == []


def test_wrong_credentials_are_reported_in_one_line(fake, tmp_path):
    env = fake.client_env(tmp_path / "home")
    env["KAGGLE_KEY"] = "wrong"
    with pytest.raises(UserError, match="denied access") as info:
        KaggleCli(env=env).status(REF)
    assert "\n" not in str(info.value)


def test_server_down_is_one_clear_error(tmp_path):
    server = FakeKaggle().start()
    env = server.client_env(tmp_path / "home")
    server.stop()
    with pytest.raises(UserError, match="cannot reach Kaggle"):
        KaggleCli(env=env, timeout_s=60).status(REF)


# --------------------------------------------------------------------------- status and wait


def test_wait_follows_queued_running_complete_with_back_off(fake, cli, cfg, tmp_path, capsys):
    ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    sleeps: list[float] = []
    st = ops.wait("nb", cfg=cfg, cli=cli, sleep=sleeps.append)
    assert st.state == "COMPLETE"
    states = [ln.rsplit(": ", 1)[-1] for ln in capsys.readouterr().out.splitlines() if "+" in ln]
    assert states == ["QUEUED", "RUNNING", "COMPLETE"]
    assert sleeps == [1.0, 2.0]
    assert load_registry(cfg.results_dir).latest("nb").status == "COMPLETE"


def test_wait_reports_an_error_with_its_failure_message(fake, cli, cfg, tmp_path):
    fake.plan_next_run(statuses=("RUNNING", "ERROR"), failure_message="CUDA out of memory")
    ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    with pytest.raises(UserError, match="nb v1 failed on Kaggle: CUDA out of memory"):
        ops.wait("nb", cfg=cfg, cli=cli, sleep=no_sleep)
    run = load_registry(cfg.results_dir).latest("nb")
    assert (run.status, run.failure_message) == ("ERROR", "CUDA out of memory")


def test_a_running_version_blocks_push_and_pull_and_wait_stops_at_its_limit(
    fake, cli, cfg, tmp_path
):
    build = fake_build(tmp_path)
    fake.plan_next_run(statuses=("RUNNING",))
    ops.push("nb", cfg=cfg, cli=cli, build=build)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    cfg.wait_timeout_s = 5.0
    with pytest.raises(UserError, match="still RUNNING after 5 s"):
        ops.wait("nb", cfg=cfg, cli=cli, sleep=sleep, clock=lambda: now[0])
    assert now[0] <= 5.0
    with pytest.raises(UserError, match="still RUNNING.*make wait-nb"):
        ops.pull("nb", cfg=cfg, cli=cli)  # partial outputs would block the complete ones
    with pytest.raises(UserError, match="still RUNNING.*make wait-nb"):
        ops.push("nb", cfg=cfg, cli=cli, build=build)  # would hide the running version
    assert len(fake.calls("SaveKernel")) == 1 and fake.calls("ListKernelSessionOutput") == []
    assert [r.version for r in load_registry(cfg.results_dir).runs] == [1]


# --------------------------------------------------------------------------- pull


def test_pull_downloads_every_page_checks_records_and_never_overwrites(fake, cli, cfg, tmp_path):
    fake.plan_next_run(statuses=("COMPLETE",))
    ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    dest = ops.pull("nb", cfg=cfg, cli=cli)

    pages = fake.calls("ListKernelSessionOutput")
    served = fake.kernels[REF][-1].outputs
    expected_pages = -(-len(served) // fake.output_page_size)
    assert expected_pages > 1 and len(pages) == expected_pages
    assert [p.body.get("pageToken") or "0" for p in pages] == [
        str(i * fake.output_page_size) for i in range(expected_pages)
    ]
    assert any(name.startswith("examples/") for name in served)  # a subfolder, pulled too
    assert dest == cfg.results_dir / "nb" / "v1"
    for name, content in served.items():
        assert (dest / name).read_bytes() == content
    assert (dest / f"{SLUG}.log").read_text() == fake.kernels[REF][-1].log
    run = load_registry(cfg.results_dir).latest("nb")
    assert run.pulled_dir == "nb/v1"
    assert set(run.files) == set(served) | {f"{SLUG}.log"}

    assert ops.pull("nb", cfg=cfg, cli=cli) == dest  # the same files again: fine
    served["history.json"] = b'[{"epoch": 1}]'
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    with pytest.raises(UserError, match="already holds a different download"):
        ops.pull("nb", cfg=cfg, cli=cli)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_pull_warns_when_the_summary_comes_from_another_commit(fake, cli, cfg, tmp_path):
    summary = {"git_commit": "0" * 40, "metrics": {}}
    fake.plan_next_run(
        statuses=("COMPLETE",), outputs={"summary.json": json.dumps(summary).encode()}
    )
    ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    with pytest.warns(UserWarning, match="may belong to another version"):
        ops.pull("nb", cfg=cfg, cli=cli)


def test_pull_refuses_an_http_error_body_saved_as_a_checkpoint(fake, cli, cfg, tmp_path):
    fake.plan_next_run(statuses=("COMPLETE",), broken=("last.pt",))
    ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
    # kaggle 2.2.4 saved the error page under the file's name; 2.2.5 stops on the HTTP error.
    with pytest.raises(UserError, match=r"last\.pt: the download (is a storage error page|failed)"):
        ops.pull("nb", cfg=cfg, cli=cli)
    assert not (cfg.results_dir / "nb" / "v1").exists()
    assert load_registry(cfg.results_dir).latest("nb").pulled_at is None


# --------------------------------------------------------------------------- end to end


def test_push_wait_pull_report_end_to_end_through_the_entry_points(
    fake, tmp_path, monkeypatch, capsys
):
    """`make push-X wait-X pull-X report` as the Makefile runs them, with the real builder."""
    for key, value in fake.client_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    base = ["--results", str(results)]
    assert ops.main([*base, "push", "_example"]) == 0
    assert ops.main([*base, "status", "_example"]) == 0
    assert ops.main([*base, "wait", "_example", "--poll", "0", "--max-poll", "0"]) == 0
    assert ops.main([*base, "pull", "_example"]) == 0
    assert ops.main([*base, "report"]) == 0
    capsys.readouterr()

    summary = json.loads((results / "_example" / "v1" / "summary.json").read_text())
    board = (results / "LEADERBOARD.md").read_text()
    row = next(line for line in board.splitlines() if line.startswith("| _example v1 "))
    pesq = summary["metrics"]["enhanced"]["pesq"]["mean"]
    si_sdr_delta = summary["metrics"]["delta"]["si_sdr"]["mean"]
    assert f"**{pesq:.3f}**" in row and f"({si_sdr_delta:+.2f})" in row
    assert summary["device"] in row
    assert (results / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- the real service's ways


def test_the_error_line_is_read_from_the_whole_output_not_its_last_line():
    from builders.kaggle_cli import error_line

    hints = (
        "Notebook a/b-kernel not found\n\nThe resource was not found. Check the spelling.\n"
        "To search for one, try 'kaggle search <query>'.\n"
    )
    assert error_line("", hints) == "Notebook a/b-kernel not found"
    progress = (
        "  0%|          | 0.00/1.73k [00:00<?, ?B/s]\r403 Client Error: Forbidden for url: u\n"
    )
    assert error_line("", progress) == "403 Client Error: Forbidden for url: u"
    crash = "Traceback (most recent call last):\n  File x\nModuleNotFoundError: six\n"
    assert error_line("", crash) == "ModuleNotFoundError: six"


def test_a_kaggle_json_without_a_key_is_named(tmp_path: Path):
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    config = home / ".kaggle" / "kaggle.json"
    config.write_text('{"username": "me"}')
    with pytest.raises(UserError) as info:
        find_credentials({"HOME": str(home)})
    assert str(info.value).startswith(f"{config}: no 'key' in it")
    assert "\n" not in str(info.value)
    # Credentials from the environment still work beside an incomplete file.
    env = {"HOME": str(home), "KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}
    assert find_credentials(env).username == "u"


def test_the_first_push_of_a_new_kernel_succeeds_when_kaggle_answers_403(tmp_path):
    with FakeKaggle(unknown_kernel_code=403) as fake:
        cli = KaggleCli(env=fake.client_env(tmp_path / "home"), timeout_s=60)
        cfg = ops.OpsConfig(results_dir=tmp_path / "results", poll_s=0.0, max_poll_s=0.0)
        run = ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
        assert run.version == 1 and len(fake.calls("SaveKernel")) == 1
        # A kernel this registry knows but Kaggle no longer shows is not taken for a new one:
        # its outputs would be lost.
        fake.kernels.clear()
        with pytest.raises(UserError, match="nb v1 .* status cannot be read"):
            ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
        assert len(fake.calls("SaveKernel")) == 1


def test_an_unknown_kernel_source_stops_the_push_in_one_line(fake, cli, cfg, tmp_path):
    build = fake_build(tmp_path)

    def with_source(name: str, username: str | None) -> Path:
        kernel_dir = build(name, username)
        meta_path = kernel_dir / "kernel-metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["kernel_sources"] = ["tester/never-pushed-notebook"]
        meta_path.write_text(json.dumps(meta))
        return kernel_dir

    with pytest.raises(UserError, match="kernel source 'tester/never-pushed-notebook'") as info:
        ops.push("nb", cfg=cfg, cli=cli, build=with_source)
    assert "\n" not in str(info.value)
    assert fake.calls("SaveKernel") == [] and load_registry(cfg.results_dir).runs == []


@pytest.mark.parametrize("labels", [True, False], ids=["version-labels", "no-labels"])
def test_wait_and_pull_never_take_the_previous_sessions_answer(tmp_path, capsys, labels):
    """Right after a push Kaggle's unlabelled status and outputs still describe the previous
    version. With version labels (kaggle 2.2.5) they are never asked for; without them the stale
    answer is recognised and waited out."""
    with FakeKaggle(stale_calls=2) as fake:
        cli = KaggleCli(env=fake.client_env(tmp_path / "home"), version_labels=labels)
        cfg = ops.OpsConfig(results_dir=tmp_path / "results", poll_s=0.0, max_poll_s=0.0)
        build = fake_build(tmp_path)
        fake.plan_next_run(statuses=("COMPLETE",))
        ops.push("nb", cfg=cfg, cli=cli, build=build)
        ops.push("nb", cfg=cfg, cli=cli, build=build)  # pulls v1 first
        capsys.readouterr()

        assert ops.wait("nb", cfg=cfg, cli=cli, sleep=no_sleep).state == "COMPLETE"
        out = capsys.readouterr().out
        states = [ln.rsplit(": ", 1)[-1] for ln in out.splitlines() if "+" in ln]
        assert states == ["QUEUED", "RUNNING", "COMPLETE"]  # v2's own session, start to end
        assert ("previous session" in out) is not labels

        if labels:
            dest = ops.pull("nb", cfg=cfg, cli=cli)
        else:
            fake._stale_left[(REF, "ListKernelSessionOutput")] = 1  # a lagging output listing
            with pytest.raises(UserError, match="served nb v1's outputs .* nothing saved"):
                ops.pull("nb", cfg=cfg, cli=cli)
            assert not (cfg.results_dir / "nb" / "v2").exists()
            assert load_registry(cfg.results_dir).find("nb", 2).pulled_at is None
            dest = ops.pull("nb", cfg=cfg, cli=cli)  # the next listing is v2's
        summary = json.loads((dest / "summary.json").read_text())
        assert dest.name == "v2" and summary["kernel"] == f"{REF}/2"
        # (the first call asks whether the kernel exists at all: no version to name yet)
        labelled = [r.body.get("versionLabel") for r in fake.calls("GetKernelSessionStatus")]
        assert all(labelled[1:]) if labels else not any(labelled)


def test_a_finished_previous_session_blocks_pull_right_after_a_push_without_labels(tmp_path):
    with FakeKaggle(stale_calls=5) as fake:
        cli = KaggleCli(env=fake.client_env(tmp_path / "home"), version_labels=False)
        cfg = ops.OpsConfig(results_dir=tmp_path / "results")
        fake.plan_next_run(statuses=("COMPLETE",))
        ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
        ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
        with pytest.raises(UserError, match="nb v2 has not started on Kaggle yet"):
            ops.pull("nb", cfg=cfg, cli=cli)
        assert load_registry(cfg.results_dir).find("nb", 2).status == "QUEUED"


def test_sources_kaggle_drops_at_push_time_are_an_error_not_a_note(tmp_path, monkeypatch):
    with FakeKaggle(datasets=()) as fake:
        cli = KaggleCli(env=fake.client_env(tmp_path / "home"))
        cfg = ops.OpsConfig(results_dir=tmp_path / "results")
        # As if the dataset vanished between the check and the push.
        monkeypatch.setattr(ops, "check_sources", lambda name, meta, cli: None)
        with pytest.raises(UserError, match="dropped some of its inputs.*libri-speech-noise"):
            ops.push("nb", cfg=cfg, cli=cli, build=fake_build(tmp_path))
        (run,) = load_registry(cfg.results_dir).runs  # pushed: recorded, so it can be found
        assert run.version == 1

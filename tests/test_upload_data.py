"""`make upload-data`: your own speech + noise folder checked, staged and uploaded as a Kaggle
dataset, through `make` against the loopback server (tests/kaggle_server.py) driven by the real
`kaggle` CLI, plus the folder check on its own."""

from __future__ import annotations

import csv
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from kaggle_server import FakeKaggle

from builders.kaggle_cli import (
    DatasetState,
    parse_dataset_status_output,
    parse_dataset_upload_output,
)
from builders.metadata import OWN_DATASET_SLUG
from builders.registry import load_registry
from builders.upload_data import (
    MANIFEST,
    METADATA_FILE,
    MIN_GROUPS,
    FolderProblems,
    check_folder,
    check_slug,
)
from common.audio import SAMPLE_RATE, write_audio
from common.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SECONDS = 0.2
FREE = "CC BY 4.0"
NONCOMMERCIAL = "CC BY-NC 4.0"
OTHER_RATE = SAMPLE_RATE // 2
PROCESSING = ("BLOBS_RECEIVED", "READY")  # one state before ready: the command polls


def _tone(seed: int, sr: int = SAMPLE_RATE, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wav = 0.1 * rng.standard_normal(int(SECONDS * sr)).astype(np.float32)
    return wav if channels == 1 else np.stack([wav] * channels, axis=1)


def make_folder(root: Path, n_speakers: int = MIN_GROUPS, n_noise: int = MIN_GROUPS) -> Path:
    """speech/spkN/uttN.flac, noise/noiseN.flac, one non-commercial noise, and MANIFEST.csv."""
    rows = []
    for i in range(n_speakers):
        rel = f"speech/spk{i}/utt{i}.flac"
        write_audio(root / rel, _tone(i))
        rows.append({"path": rel, "kind": "speech", "speaker": f"spk{i}", "license_note": FREE})
    for i in range(n_noise):
        rel = f"noise/noise{i}.flac"
        write_audio(root / rel, _tone(100 + i))
        rows.append({"path": rel, "kind": "noise", "speaker": "", "license_note": FREE})
    rel = "noise/nc/restricted.flac"
    write_audio(root / rel, _tone(999))
    rows.append({"path": rel, "kind": "noise", "speaker": "", "license_note": NONCOMMERCIAL})
    (root / "README.md").write_text("not uploaded\n")
    write_manifest(root, rows)
    return root


def write_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    with open(root / MANIFEST, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "kind", "speaker", "license_note"])
        writer.writeheader()
        writer.writerows(rows)


def manifest_rows(root: Path) -> list[dict[str, str]]:
    with open(root / MANIFEST, newline="") as f:
        return list(csv.DictReader(f))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }


# --------------------------------------------------------------------------- the check alone


def test_a_good_folder_passes_and_leaves_noncommercial_files_out(tmp_path: Path):
    root = make_folder(tmp_path / "data")
    rows = manifest_rows(root)
    free = [r["path"] for r in rows if r["license_note"] == FREE]  # MANIFEST's order
    check = check_folder(root)
    assert [f.rel for f in check.files] == sorted(free)
    assert check.noncommercial_left_out == [
        r["path"] for r in rows if r["license_note"] == NONCOMMERCIAL
    ]
    staged_rows = list(csv.DictReader(check.manifest_text().splitlines()))
    assert [r["path"] for r in staged_rows] == free
    assert check_folder(root, include_nc=True).noncommercial_included == (
        check.noncommercial_left_out
    )


def test_every_problem_is_one_line_naming_its_file(tmp_path: Path):
    root = make_folder(tmp_path / "data")
    rows = manifest_rows(root)
    corrupt = root / rows[0]["path"]
    corrupt.write_bytes(b"fLaC but not really")
    unlisted = root / "noise" / "unlisted.flac"
    write_audio(unlisted, _tone(7))
    gone = rows[-2]["path"]
    (root / gone).unlink()
    with pytest.raises(FolderProblems) as info:
        check_folder(root)
    problems = info.value.problems
    assert len(problems) == len(("corrupt", "unlisted", "gone"))
    assert any(str(corrupt) in p for p in problems)
    assert any(str(unlisted) in p and "not listed" in p for p in problems)
    assert any(gone in p and "not in the folder" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_a_folder_without_its_parts_names_each(tmp_path: Path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(FolderProblems) as info:
        check_folder(root)
    assert len(info.value.problems) == len(("speech", "noise", MANIFEST))


def test_other_rates_and_stereo_are_warnings_naming_the_files(tmp_path: Path):
    root = make_folder(tmp_path / "data")
    rows = manifest_rows(root)
    slow = root / rows[0]["path"]
    write_audio(slow, _tone(0, sr=OTHER_RATE), sr=OTHER_RATE)
    stereo = root / rows[1]["path"]
    import soundfile as sf

    sf.write(str(stereo), _tone(1, channels=2), SAMPLE_RATE, subtype="PCM_16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check = check_folder(root)
    text = [str(w.message) for w in caught]
    assert any(rows[0]["path"] in t and str(OTHER_RATE) in t for t in text)
    assert any(rows[1]["path"] in t and "channel" in t for t in text)
    assert len(check.files) == len([r for r in rows if r["license_note"] == FREE])


def test_too_few_speakers_once_noncommercial_files_are_out(tmp_path: Path):
    root = make_folder(tmp_path / "data", n_speakers=MIN_GROUPS - 1)
    with pytest.raises(FolderProblems) as info:
        check_folder(root)
    assert len(info.value.problems) == 1 and "speaker" in info.value.problems[0]


def test_slugs_kaggle_would_refuse_are_refused_first():
    assert check_slug(OWN_DATASET_SLUG) == OWN_DATASET_SLUG
    for bad in ("short", "Upper-Case-Slug", "with space here", "-leading-hyphen", "x" * 51):
        with pytest.raises(UserError):
            check_slug(bad)


def test_the_cli_output_is_read_as_kaggle_means_it():
    url = "https://www.kaggle.com/datasets/me/some-data"
    created = f"Your private Dataset is being created. Please check progress at {url}\n"
    assert parse_dataset_upload_output(created) == url
    versioned = f"Dataset version is being created. Please check progress at {url}\n"
    assert parse_dataset_upload_output(versioned) == url
    for refused in ("Dataset creation error: quota", "Dataset version creation error: quota"):
        with pytest.raises(UserError, match="quota"):
            parse_dataset_upload_output(refused + "\n")
    state = parse_dataset_status_output('{"status": "ready", "current_version_number": 3}')
    assert state == DatasetState("ready", 3) and state.ready
    assert parse_dataset_status_output("blobs_received\n") == DatasetState("blobs_received")


# --------------------------------------------------------------------------- through make


@pytest.fixture(scope="module")
def set_up() -> None:
    """`make setup` once, outside the loopback-only environment (a no-op when up to date)."""
    proc = subprocess.run(["make", "-s", "setup"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def upload(env: dict[str, str], *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", "upload-data", "POLL=0.01", *variables],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _env(fake: FakeKaggle, tmp_path: Path) -> dict[str, str]:
    return {**fake.client_env(tmp_path / "home"), "RESULTS_DIR": str(tmp_path / "results")}


@pytest.mark.slow
def test_create_then_a_new_version_through_make(set_up, tmp_path: Path):
    root = make_folder(tmp_path / "data")
    before = snapshot(root)
    rows = manifest_rows(root)
    free = [r["path"] for r in rows if r["license_note"] == FREE]
    restricted = [r["path"] for r in rows if r["license_note"] == NONCOMMERCIAL]
    ref = f"tester/{OWN_DATASET_SLUG}"
    public = ("earth16/libri-speech-noise-dataset",)
    with FakeKaggle(datasets=public, dataset_statuses=PROCESSING, timeout_s=280) as fake:
        env = _env(fake, tmp_path)
        first = upload(env, f"DATA={root}")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"left out {len(restricted)} non-commercial file(s)" in first.stdout
        assert "not uploaded (only speech/, noise/ and MANIFEST.csv are): README.md" in first.stdout
        assert f"{ref}: {PROCESSING[0].lower()}" in first.stdout
        assert f"{ref} v1 is ready" in first.stdout
        files = fake.uploads[ref].files
        assert sorted(files) == sorted([*free, MANIFEST])  # speech/ and noise/ as folders
        for rel in free:
            assert files[rel] == (root / rel).read_bytes()
        assert [r["path"] for r in csv.DictReader(files[MANIFEST].decode().splitlines())] == free
        create = fake.calls("CreateDataset")[-1].body
        assert create["isPrivate"] and create["licenseName"]

        again = upload(env, f"DATA={root}")  # nothing changed: nothing uploaded
        assert again.returncode == 0, again.stderr
        assert "nothing uploaded" in again.stdout
        assert fake.calls("CreateDatasetVersion") == []

        second = upload(env, f"DATA={root}", "INCLUDE_NC=1")
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"{ref} v2 is ready" in second.stdout
        assert len(fake.calls("CreateDatasetVersion")) == 1
        assert sorted(fake.uploads[ref].files) == sorted([*free, *restricted, MANIFEST])

    records = load_registry(tmp_path / "results").datasets
    assert [(r.ref, r.version, r.created) for r in records] == [(ref, 1, True), (ref, 2, False)]
    assert records[0].noncommercial_left_out == len(restricted)
    assert records[1].include_noncommercial and records[1].status == "ready"
    assert snapshot(root) == before  # the user's folder is never written to
    staged = REPO / "build" / "upload-data" / OWN_DATASET_SLUG
    meta = json.loads((staged / METADATA_FILE).read_text())
    assert meta["id"] == ref and len(meta["licenses"]) == 1


@pytest.mark.slow
def test_a_folder_with_a_corrupt_file_uploads_nothing_and_names_it(set_up, tmp_path: Path):
    root = make_folder(tmp_path / "data")
    corrupt = root / manifest_rows(root)[0]["path"]
    corrupt.write_bytes(b"\x00" * 64)
    with FakeKaggle(timeout_s=120) as fake:
        proc = upload(_env(fake, tmp_path), f"DATA={root}")
        assert proc.returncode == 2
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert any(str(corrupt) in ln for ln in errors)
        assert "Traceback" not in proc.stderr
        assert fake.requests == []  # not even a status call
    assert not (tmp_path / "results" / "registry.json").exists()


@pytest.mark.slow
def test_a_refused_upload_is_one_error_line(set_up, tmp_path: Path):
    root = make_folder(tmp_path / "data")
    reason = "Your account has reached its private dataset storage limit"
    # 403 for a dataset that does not exist yet, as Kaggle answers for kernels: taken as new.
    with FakeKaggle(datasets=(), unknown_dataset_code=403, timeout_s=120) as fake:
        fake.reject_next_dataset(reason)
        proc = upload(_env(fake, tmp_path), f"DATA={root}", "DATASET=my-own-sounds")
        assert proc.returncode == 2, proc.stdout
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and reason in errors[0]
        assert fake.uploads == {} and len(fake.calls("CreateDataset")) == 1
    assert load_registry(tmp_path / "results").datasets == []


def test_make_without_a_folder_says_how():
    proc = subprocess.run(
        ["make", "-s", "upload-data"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "DATA=" in proc.stderr


def test_a_folder_inside_the_staging_folder_is_refused_before_anything_runs(tmp_path: Path):
    from builders.kaggle_cli import KaggleCli
    from builders.upload_data import UploadConfig, upload_data

    cfg = UploadConfig(results_dir=tmp_path / "results", staging_root=tmp_path / "staging")
    root = make_folder(cfg.staging_root / OWN_DATASET_SLUG / "data")
    before = snapshot(root)
    cli = KaggleCli(env={"KAGGLE_USERNAME": "tester", "KAGGLE_KEY": "k", "HOME": str(tmp_path)})
    with pytest.raises(UserError, match="staging"):
        upload_data(root, cfg=cfg, cli=cli)
    assert snapshot(root) == before

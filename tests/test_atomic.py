"""Every output file is written whole or not at all (common.atomic)."""

from __future__ import annotations

import os
import stat

import pytest

from common.atomic import HOST_TAG, atomic_write


def test_an_error_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("previous run")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_killed_writers_leftover_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a writer that is gone
    target = tmp_path / "runs" / "registry.json"
    target.parent.mkdir()
    leftover = target.parent / f".registry.json.{HOST_TAG}-{proc.pid}.abc12345.tmp"
    leftover.write_text("a dead process's half file")
    # A running writer's temporary (this process) and a recent one without an owner stay.
    running = target.parent / f".other.json.{HOST_TAG}-{os.getpid()}.abc12345.tmp"
    unknown = target.parent / ".registry.json.abc12345.tmp"
    for p in (running, unknown):
        p.write_text("x")
    with atomic_write(target, encoding="utf-8") as f:
        f.write("{}")
    assert target.read_text() == "{}"
    assert not leftover.exists() and running.exists() and unknown.exists()


def test_the_finished_file_has_the_usual_permissions_not_mkstemps(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.bin", "wb") as f:
            f.write(b"\0")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o644


def test_a_read_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="write mode"), atomic_write(tmp_path / "x", "r"):
        pass

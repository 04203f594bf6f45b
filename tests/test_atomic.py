"""Every output file is written whole or not at all (common.atomic)."""

from __future__ import annotations

import os
import stat

import pytest

from common.atomic import atomic_write


def test_an_error_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("previous run")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_killed_writers_leftover_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "runs" / "registry.json"
    target.parent.mkdir()
    leftover = target.parent / ".registry.json.abc12345.tmp"
    leftover.write_text("a dead process's half file")
    # Other targets' temporaries are not ours to remove, even where the name begins alike.
    other = target.parent / ".other.json.abc12345.tmp"
    longer = target.parent / ".registry.json.x.json.abc12345.tmp"
    for p in (other, longer):
        p.write_text("x")
    with atomic_write(target, encoding="utf-8") as f:
        f.write("{}")
    assert target.read_text() == "{}"
    assert not leftover.exists() and other.exists() and longer.exists()


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

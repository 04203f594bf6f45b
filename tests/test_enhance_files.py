"""Files around `enhance` (issue 21): temporary names within the file system's 255 bytes, killed
runs' leftovers removed only when their writer is gone, and a folder run that says what it
skipped and why. Each case runs `python -m common enhance` as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_inference_cli import ckpt, enhance, tone  # noqa: F401 (ckpt is a fixture)

from common.atomic import HOST_TAG, NAME_MAX_BYTES, STALE_TEMP_HOURS, temp_prefix


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_legal_name_of_the_longest_length_is_enhanced(tmp_path, ckpt):  # noqa: F811
    name = "n" * (NAME_MAX_BYTES - len(".wav") - 1) + ".wav"  # 254 bytes
    src = tone(tmp_path / "in" / name, 1)
    proc = enhance(ckpt, src, tmp_path / "out" / name)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / name).is_file()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]  # no temporary left
    # The same holds for a multi-byte name: it is cut on a character boundary.
    prefix = temp_prefix(Path("é" * 126 + ".wav"))
    assert len(prefix.encode()) + 8 + len(".tmp") <= NAME_MAX_BYTES


def test_killed_runs_leftovers_are_removed_and_a_running_writers_are_kept(tmp_path, ckpt):  # noqa: F811
    src = tmp_path / "in"
    tone(src / "a.wav", 1)
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f".a.wav.{HOST_TAG}-{_dead_pid()}.abcd1234.tmp"
    # This test's own process is running: its temporary is a concurrent run's, never removed.
    alive = out / f".a.wav.{HOST_TAG}-{os.getpid()}.abcd1234.tmp"
    old = out / ".b.wav.abcd1234.tmp"  # an older version's name, without an owner
    recent = out / ".c.wav.abcd1234.tmp"
    for p in (dead, alive, old, recent):
        p.write_bytes(b"half a wav")
    week = time.time() - 7 * 24 * 3600
    assert 7 * 24 > STALE_TEMP_HOURS
    os.utime(old, (week, week))
    proc = enhance(ckpt, src, out)
    assert proc.returncode == 0, proc.stderr
    assert not dead.exists() and not old.exists()
    assert alive.exists() and recent.exists()
    assert f"{dead}: removed, left by a killed run" in proc.stderr
    assert (out / "a.wav").is_file()


def test_a_folder_run_reports_what_it_skipped_by_reason(tmp_path, ckpt):  # noqa: F811
    src = tmp_path / "in"
    tone(src / "a.wav", 1)
    for name in ("b.ogg", "c.mp3"):
        (src / name).write_bytes(b"any")
    (src / "notes.txt").write_text("not audio")
    (src / "gone.wav").symlink_to(tmp_path / "missing.wav")
    proc = enhance(ckpt, src, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "enhanced 1 file(s)" in proc.stdout
    assert "skipped 4 file(s)" in proc.stdout
    assert "2 not WAV/FLAC" in proc.stdout and "1 a symbolic link to nothing" in proc.stdout
    assert "1 not audio" in proc.stdout
    for name in ("b.ogg", "c.mp3", "gone.wav"):
        assert f"{src / name}: skipped" in proc.stderr
    assert "notes.txt" not in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.wav"]


@pytest.mark.parametrize("name", ["gone.wav"])
def test_a_dangling_link_given_alone_is_one_error_line(tmp_path, ckpt, name):  # noqa: F811
    (tmp_path / name).symlink_to(tmp_path / "missing.wav")
    proc = enhance(ckpt, tmp_path / name, tmp_path / "out.wav")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "symbolic link to nothing" in proc.stderr

"""Atomic writes: all or nothing, permissions like any user file, the target kept on failure."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import write_text_atomic


def test_writes_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_new_files_follow_the_umask_and_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.conf"
        write_text_atomic(fresh, "x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        private = tmp_path / "private.json"
        private.write_text("secret")
        private.chmod(0o600)
        write_text_atomic(private, "new")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_failing_check_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "nginx.conf"
    target.write_text("working config")

    def reject(tmp: Path) -> None:
        assert tmp.read_text() == "broken config"
        raise LagscopeError("check", "rejected", ExitCode.GATE_FAILED)

    with pytest.raises(LagscopeError):
        write_text_atomic(target, "broken config", check=reject)
    assert target.read_text() == "working config"
    assert [p.name for p in tmp_path.iterdir()] == ["nginx.conf"]


def test_unwritable_directory_is_a_one_line_environment_error(tmp_path: Path) -> None:
    with pytest.raises(LagscopeError) as err:
        write_text_atomic(tmp_path / "missing" / "x.json", "x")
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert err.value.phase == "output"

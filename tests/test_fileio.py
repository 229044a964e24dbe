"""Writing -o files (atomic for regular files, links kept, devices and FIFOs written in
place, locked files retried) and reading text in the encodings Windows tools write."""

from __future__ import annotations

import codecs
import math
import os
import re
import stat
import sys
import threading
from pathlib import Path

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import (
    Replacer,
    check_outputs,
    decode_text,
    read_text,
    write_all,
    write_text_atomic,
)


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


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- what is at the path ------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_symlink_is_followed_and_its_target_replaced_keeping_its_mode(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert _names(tmp_path) == ["link.json", "real.json"]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "reports" / "today.json")
    write_text_atomic(link, "x")
    assert link.is_symlink()
    assert (tmp_path / "reports" / "today.json").read_text() == "x"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_symlink_loop_is_a_one_line_environment_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(LagscopeError) as err:
        write_text_atomic(tmp_path / "a", "x")
    assert (err.value.phase, err.value.exit_code) == ("output", ExitCode.ENVIRONMENT)
    assert "\n" not in err.value.one_line()
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LagscopeError, match="is a directory") as err:
        write_text_atomic(tmp_path, "x")
    assert err.value.exit_code == ExitCode.ENVIRONMENT


def _read_fifo(fifo: Path, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        with open(fifo, "rb") as fh:
            into.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("through_link", [False, True])
def test_a_fifo_is_written_in_place_not_renamed_over(tmp_path: Path, through_link: bool) -> None:
    fifo = tmp_path / "pipe"
    if sys.platform == "win32":  # the marker skips it too; this line tells mypy --platform win32
        pytest.skip("POSIX FIFOs")
    os.mkfifo(fifo)
    path = fifo
    if through_link:
        path = tmp_path / "pipe-link"
        path.symlink_to(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    write_text_atomic(path, "report → ✓\n")
    reader.join(10)
    assert got == ["report → ✓\n".encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert path.is_symlink() == through_link
    assert _names(tmp_path) == sorted(["pipe"] + (["pipe-link"] if through_link else []))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_check_sees_the_text_before_a_fifo_is_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    if sys.platform == "win32":  # the marker skips it too; this line tells mypy --platform win32
        pytest.skip("POSIX FIFOs")
    os.mkfifo(fifo)
    seen: list[str] = []

    def reject(staged: Path) -> None:
        seen.append(staged.read_text())
        raise LagscopeError("check", "rejected", ExitCode.GATE_FAILED)

    # No reader: opening the FIFO would block, so a rejecting check must come first.
    with pytest.raises(LagscopeError, match="rejected"):
        write_text_atomic(fifo, "config", check=reject)
    assert seen == ["config"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def _char_device(path: Path, minor: int) -> None:
    """A node for the kernel's mem driver (1, minor) under the test's own directory."""
    if sys.platform == "win32" or os.geteuid() != 0:
        pytest.skip("creating device nodes needs root")
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        with open(path, "wb"):
            pass
    except PermissionError:
        pytest.skip("device nodes not allowed here (nodev mount or container)")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX device nodes")
def test_a_null_device_stays_a_device(tmp_path: Path) -> None:
    null = tmp_path / "null"
    _char_device(null, 3)
    write_text_atomic(null, "discarded")
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert _names(tmp_path) == ["null"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX device nodes")
def test_a_full_device_is_a_one_line_error_and_stays_a_device(tmp_path: Path) -> None:
    full = tmp_path / "full"
    _char_device(full, 7)
    with pytest.raises(LagscopeError) as err:
        write_text_atomic(full, "x" * 10_000)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "No space left" in err.value.message
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="Linux /proc")
def test_a_link_to_an_open_descriptor_appends_like_dev_stdout(tmp_path: Path) -> None:
    # `-o /dev/stdout > out.txt`: the link chain ends at the shell's open out.txt; replacing
    # out.txt would detach it from the descriptor the shell holds.
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:
        fh.write("before\n")
        fh.flush()
        stdout_link = tmp_path / "stdout"
        stdout_link.symlink_to(f"/proc/self/fd/{fh.fileno()}")
        inode = out.stat().st_ino
        write_text_atomic(stdout_link, "report\n")
    assert out.read_text() == "before\nreport\n"
    assert out.stat().st_ino == inode


# -- locked files (Windows antivirus and indexer) ---------------------------------------


class LockedFor:
    """A replace function that fails with PermissionError ``times`` times, and a clock that
    the retry pauses advance: the Windows lock condition without the wall clock."""

    def __init__(self, times: float) -> None:
        self.left = times
        self.now_s = 0.0
        self.calls = 0

    def replace(self, src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise PermissionError(13, "Access is denied")
        os.replace(src, dst)

    def clock(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += seconds

    def replacer(self) -> Replacer:
        return Replacer(replace=self.replace, clock=self.clock, sleep=self.sleep)


@pytest.mark.parametrize("times", [1, 5, 39])
def test_a_briefly_locked_target_is_retried(tmp_path: Path, times: int) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    lock = LockedFor(times)
    write_text_atomic(target, "new", replacer=lock.replacer())
    assert target.read_text() == "new"
    assert lock.calls == times + 1
    assert lock.now_s <= 2.0
    assert _names(tmp_path) == ["report.json"]


@pytest.mark.parametrize("mode", [0o644, 0o444])
def test_a_target_locked_past_two_seconds_is_an_error_and_leaves_no_temp(
    tmp_path: Path, mode: int
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    target.chmod(mode)  # read-only: the temporary inherits it and must still be removed
    lock = LockedFor(math.inf)
    with pytest.raises(LagscopeError) as err:
        write_text_atomic(target, "new", replacer=lock.replacer())
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "still locked after 2 s" in err.value.message
    assert 2.0 <= lock.now_s <= 2.2
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["report.json"]


def test_an_interrupt_during_the_check_leaves_no_temp(tmp_path: Path) -> None:
    def interrupted(tmp: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "x.conf", "x", check=interrupted)
    assert _names(tmp_path) == []


# -- reading what Windows editors and shells write ---------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "naïve = 1\n".encode(),
        codecs.BOM_UTF8 + "naïve = 1\n".encode(),
        "naïve = 1\n".encode("utf-16"),  # with a BOM, as PowerShell 5.1's `>` writes
        codecs.BOM_UTF16_LE + "naïve = 1\n".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "naïve = 1\n".encode("utf-16-be"),
    ],
)
def test_utf8_with_or_without_bom_and_utf16_with_bom_are_read(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.toml"
    path.write_bytes(data)
    assert read_text(path) == "naïve = 1\n"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"caf\xe9 = 1\n", "not UTF-8 text (byte 0xe9 at offset 3)"),
        ("a = 1\n".encode("utf-16-le"), "UTF-16 without a byte-order mark"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "invalid UTF-16"),
    ],
)
def test_other_bytes_are_a_one_line_value_error(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)) as err:
        decode_text(data)
    assert "\n" not in str(err.value)


def _names_of_one_file(tmp_path: Path) -> list[Path]:
    """Every way the tests know to name one file: as given, absolute or relative with
    dots, through a symbolic link, through a hard link."""
    target = tmp_path / "run.json"
    target.write_text("{}")
    names = [target, tmp_path / "." / "sub" / ".." / "run.json"]
    (tmp_path / "sub").mkdir()
    if sys.platform != "win32":
        (tmp_path / "link.json").symlink_to(target)
        os.link(target, tmp_path / "hard.json")
        names += [tmp_path / "link.json", tmp_path / "hard.json"]
    cwd = Path.cwd()
    if cwd.anchor == tmp_path.anchor:
        names.append(Path(os.path.relpath(target, cwd)))
    return names


def test_outputs_that_are_one_file_are_refused_whatever_their_names(tmp_path: Path) -> None:
    names = _names_of_one_file(tmp_path)
    for a in names:
        for b in names:
            with pytest.raises(LagscopeError) as info:
                check_outputs([("-o", a), ("--html", b)])
            assert info.value.exit_code == ExitCode.USAGE and "same file" in info.value.message
            with pytest.raises(LagscopeError) as info:
                check_outputs([("--har", a)], [("--load", b)])
            assert info.value.exit_code == ExitCode.USAGE and "input" in info.value.message
    assert (tmp_path / "run.json").read_text() == "{}"
    check_outputs([("-o", tmp_path / "a"), ("--html", tmp_path / "b")], [("--load", names[0])])


def test_a_device_may_take_several_outputs(tmp_path: Path) -> None:
    check_outputs([("-o", Path(os.devnull)), ("--html", Path(os.devnull))])


def test_outputs_that_cannot_be_written_are_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "missing" / "r.json", tmp_path / "file" / "r.json", tmp_path):
        with pytest.raises(LagscopeError) as info:
            check_outputs([("-o", tmp_path / "ok.json"), ("--har", bad)])
        assert info.value.exit_code == ExitCode.ENVIRONMENT and "--har" in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no probe file left


def test_write_all_writes_the_others_when_one_fails(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.html", tmp_path / "missing" / "r.json"
    failed = write_all([(bad, lambda: "x"), (good, lambda: "page")])
    assert [path for path, _ in failed] == [bad] and good.read_text() == "page"

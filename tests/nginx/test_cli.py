"""``lagscope nginx-config`` on the command line: output, atomic writes, errors, ``--check``."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lagscope.cli import main
from lagscope.errors import ExitCode, LagscopeError


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["nginx-config", *args])
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_stdout_by_default() -> None:
    code, out, _ = _run("--upstream", "127.0.0.1:8000", "--listen", "127.0.0.1:9000")
    assert code == ExitCode.OK
    assert "server 127.0.0.1:8000;" in out
    assert "listen 127.0.0.1:9000;" in out
    assert "listen [::1]" not in out


def test_flags_come_from_the_table() -> None:
    code, out, _ = _run(
        "--upstream", "127.0.0.1:8000", "--upstream-keepalive", "3", "--proxy-read-timeout-s", "7"
    )
    assert code == ExitCode.OK
    assert "keepalive 3;" in out
    assert "proxy_read_timeout 7s;" in out


def test_output_file_is_written_and_replaced(tmp_path: Path) -> None:
    target = tmp_path / "nginx.conf"
    target.write_text("old")
    code, out, err = _run("--upstream", "127.0.0.1:8000", "-o", str(target))
    assert code == ExitCode.OK
    assert out == ""
    assert "wrote" in err
    assert "keepalive 16;" in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["nginx.conf"]  # no temp file left behind


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX symlinks and FIFOs")
def test_output_keeps_a_symlink_and_writes_a_fifo_in_place(tmp_path: Path) -> None:
    real = tmp_path / "sites" / "app.conf"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "enabled.conf"
    link.symlink_to(real)
    code, _, err = _run("--upstream", "127.0.0.1:8000", "-o", str(link))
    assert code == ExitCode.OK, err
    assert link.is_symlink() and "keepalive 16;" in real.read_text()
    fifo = tmp_path / "pipe"
    if sys.platform == "win32":  # the marker skips it too; this line tells mypy --platform win32
        pytest.skip("POSIX FIFOs")
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, _, err = _run("--upstream", "127.0.0.1:8000", "-o", str(fifo))
    reader.join(10)
    assert code == ExitCode.OK, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and "keepalive 16;" in got[0]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--upstream", "nohost"], ExitCode.USAGE, "upstream: 'nohost' is not HOST:PORT"),
        (["--upstream", "h:99999"], ExitCode.USAGE, "port must be 1-65535"),
        (["--upstream", "h:1", "--listen", "x"], ExitCode.USAGE, "listen: 'x' is not HOST:PORT"),
        (
            ["--upstream", "h:1", "--listen", "localhost:80", "--listen", "127.0.0.1:80"],
            ExitCode.USAGE,
            "listen: the same address is given twice",
        ),
        (
            [
                "--upstream",
                "h:1",
                "--upstream-keepalive-timeout-s",
                "400",
                "--server-idle-timeout-s",
                "300",
            ],
            ExitCode.USAGE,
            "must be below the app server's",
        ),
        (["--upstream", "h:1", "--snippet", "--prefix", "/tmp"], ExitCode.USAGE, "exclude"),
        (
            ["--upstream", "h:1", "--check", "--nginx", "/nonexistent/nginx"],
            ExitCode.ENVIRONMENT,
            "check: nginx binary not found",
        ),
    ],
)
def test_bad_input_is_one_line_with_exit_code(args: list[str], code: int, needle: str) -> None:
    got, out, err = _run(*args)
    assert got == code
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("lagscope: ")
    assert needle in err
    assert "Traceback" not in err


def test_unwritable_output_is_an_environment_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    for target in (tmp_path / "missing-dir" / "x.conf", blocker / "x.conf"):
        code, _out, err = _run("--upstream", "127.0.0.1:8000", "-o", str(target))
        assert code == ExitCode.ENVIRONMENT
        assert err.startswith(f"lagscope: output: cannot write {target}")
        assert err.count("\n") == 1


@pytest.mark.nginx
def test_check_passes_and_writes(nginx: Path, nginx_prefix: Path) -> None:
    target = nginx_prefix / "nginx.conf"
    code, _, err = _run(
        "--upstream",
        "127.0.0.1:8000",
        "--listen",
        "localhost:8080",
        "--prefix",
        str(nginx_prefix),
        "-o",
        str(target),
        "--check",
        "--nginx",
        str(nginx),
    )
    assert code == ExitCode.OK, err
    assert "nginx -t: ok" in err
    assert target.is_file()


@pytest.mark.nginx
def test_snippet_check_passes_on_stdout(nginx: Path) -> None:
    code, out, err = _run("--upstream", "[::1]:8000", "--snippet", "--check", "--nginx", str(nginx))
    assert code == ExitCode.OK, err
    assert "server [::1]:8000;" in out


@pytest.mark.nginx
def test_check_rejection_leaves_the_old_file(nginx: Path, nginx_prefix: Path) -> None:
    # The table keeps every number inside what nginx accepts, so make nginx -t fail on the
    # environment instead: its error log path is a directory.
    (nginx_prefix / "error.log").mkdir()
    target = nginx_prefix / "nginx.conf"
    target.write_text("old")
    code, _out, err = _run(
        "--upstream",
        "127.0.0.1:8000",
        "--prefix",
        str(nginx_prefix),
        "-o",
        str(target),
        "--check",
        "--nginx",
        str(nginx),
    )
    assert code == ExitCode.GATE_FAILED
    assert err.startswith("lagscope: check: nginx -t rejected the config:")
    assert "error.log" in err
    assert err.count("\n") == 1
    assert target.read_text() == "old"
    assert sorted(p.name for p in nginx_prefix.iterdir() if p.suffix == ".tmp") == []


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--worker-processes", "99999999999999", "--worker-processes must be at most 1024"),
        ("--upstream-keepalive", "2147483647", "--upstream-keepalive must be at most 65535"),
        ("--proxy-read-timeout-s", "3000000", "--proxy-read-timeout-s must be at most 2147483"),
        ("--client-max-body-size-m", "99999999999999", "must be at most 2147483647"),
    ],
)
def test_numbers_nginx_cannot_take_are_usage_errors(flag: str, value: str, needle: str) -> None:
    code, out, err = _run("--upstream", "127.0.0.1:8000", flag, value)
    assert code == ExitCode.USAGE
    assert out == ""
    assert err.startswith("lagscope: config: ") and needle in err
    assert err.count("\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for nginx")
def test_a_check_that_hangs_is_killed_with_its_children(tmp_path: Path) -> None:
    from lagscope.nginx.cli import nginx_check

    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "nginx"
    # A wrapper that starts a child of its own and then hangs, as a stuck `nginx -t` would.
    fake.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n", encoding="utf-8")
    fake.chmod(0o755)
    with pytest.raises(LagscopeError) as err:
        nginx_check(fake, tmp_path / "nginx.conf", tmp_path, timeout_s=1.0)
    assert (err.value.phase, err.value.exit_code) == ("check", ExitCode.TIMEOUT)
    child = int(pid_file.read_text())
    # The grandchild is gone (or a zombie reaped by init, which signal 0 also fails on soon).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        status = Path(f"/proc/{child}/stat")
        if status.exists() and status.read_text().split()[2] == "Z":
            break
        time.sleep(0.05)  # polling the process table, bounded by the deadline
    else:
        pytest.fail(f"the check's child {child} outlived it")

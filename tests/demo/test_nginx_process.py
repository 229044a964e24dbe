"""The demo's nginx child: started in a group of its own, and stopped with its workers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lagscope.demo.nginx import NginxProcess, nginx_command


def _processes_naming(text: str) -> list[int]:
    """Pids whose command line contains ``text``: the master, and a worker for the moment
    between its fork and retitling itself."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _group_members(pgid: int) -> list[int]:
    if sys.platform == "win32":
        pytest.skip("process groups as POSIX has them")
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                members.append(int(entry.name))
        except OSError:
            continue
    return members


def test_the_command_names_the_prefix_and_config_for_start_and_stop() -> None:
    binary = Path("C:/nginx/nginx.exe")
    prefix = Path("C:/Temp/demo-nginx")
    assert nginx_command(binary, prefix) == [
        str(binary),
        "-p",
        str(prefix),
        "-c",
        str(prefix / "nginx.conf"),
    ]


def test_nginx_and_its_workers_leave_with_the_stop(nginx: Path, nginx_prefix: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("reads /proc")
    # The upstream need not answer: the test is about nginx's own processes.
    proc = NginxProcess(nginx, nginx_prefix, keepalive=True, upstream=("127.0.0.1", 9))
    port = proc.start()
    try:
        assert port > 0
        named = _processes_naming(str(nginx_prefix))
        assert named
        pgid = os.getpgid(named[0])
        assert pgid in named  # its own group, led by the master, which names the prefix
        assert pgid != os.getpgid(0)  # not ours: a terminal's Ctrl+C does not reach it
        members = _group_members(pgid)
        assert len(members) >= 2  # the master and at least one worker
    finally:
        proc.stop()  # a failed check above leaves no nginx behind
    assert _group_members(pgid) == []

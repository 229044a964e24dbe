"""Stopping child processes for sure: the graceful stop first, then kill; a group killed whole.

Real child processes (this interpreter), each saying "ready" once its signal handler is in
place, so no test sleeps for a start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from lagscope.procgroup import (
    NEW_GROUP_FLAGS,
    graceful_stop_signal,
    kill_group,
    kill_leftovers,
    stop_process,
)

# The child's handler for the graceful stop: exit 7 at the first ("graceful"), ignore it,
# or exit 9 at the second only.
_CHILD = """
import signal, sys, time
mode = sys.argv[1]
seen = []
def on_stop(signum, frame):
    seen.append(signum)
    if mode == "graceful" or (mode == "second" and len(seen) == 2):
        sys.exit(7 if mode == "graceful" else 9)
signal.signal(getattr(signal, "SIGBREAK", signal.SIGTERM), on_stop)
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def _child(mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mode],
        stdout=subprocess.PIPE,
        text=True,
        creationflags=NEW_GROUP_FLAGS,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _reap(proc: subprocess.Popen[str]) -> None:
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_child_that_stops_gracefully_gives_its_own_exit_code() -> None:
    proc = _child("graceful")
    try:
        assert stop_process(proc, timeout_s=30) == 7
    finally:
        _reap(proc)


def test_a_child_that_ignores_the_stop_is_killed_after_the_timeout() -> None:
    proc = _child("ignore")
    try:
        started = time.monotonic()
        code = stop_process(proc, timeout_s=0.5)
        assert code != 0 and code != 7  # killed, not its own exit
        assert time.monotonic() - started < 20
    finally:
        _reap(proc)


@pytest.mark.skipif(sys.platform == "win32", reason="terminate() is TerminateProcess there")
def test_ask_again_sends_a_second_stop_before_killing() -> None:
    proc = _child("second")
    try:
        assert stop_process(proc, timeout_s=0.5, ask_again=True) == 9
    finally:
        _reap(proc)


def test_graceful_signal_is_the_platforms() -> None:
    import signal

    if sys.platform == "win32":
        assert graceful_stop_signal() == int(signal.CTRL_BREAK_EVENT)
    else:
        assert graceful_stop_signal() == int(signal.SIGTERM)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (gone, or a zombie waiting for init), polled up to 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                if stat.read().split()[2] == "Z":
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX groups, /proc")
def test_kill_leftovers_ends_what_an_exited_child_left_running() -> None:
    """A server whose master stopped gracefully before its worker (granian stopped during a
    respawn): the worker, orphaned, is killed with the rest of the child's group."""
    script = (
        "import signal, subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0));"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    orphan = int(proc.stdout.readline())
    assert stop_process(proc, 10) == 0  # the child itself stopped as asked
    proc.stdout.close()
    os.kill(orphan, 0)  # still running after its parent's graceful exit
    kill_leftovers(proc)
    assert _gone(orphan), "the orphan outlived kill_leftovers"
    kill_leftovers(proc)  # a group already gone: nothing to do, no error


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX groups, /proc")
def test_kill_group_ends_what_the_child_started() -> None:
    # The child starts a grandchild that would outlive it, and prints its pid.
    script = (
        "import subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        "print(p.pid, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    kill_group(proc)
    assert proc.returncode is not None
    # The grandchild is gone (reaped by init once killed): polled, bounded.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
            with open(f"/proc/{grandchild}/stat", encoding="ascii") as stat:
                if stat.read().split()[2] == "Z":  # a zombie waiting for init: dead
                    break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild outlived kill_group")

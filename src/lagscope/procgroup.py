"""Child processes in a process group of their own, and stopping them: the platform rules in
one place.

Windows has no SIGTERM between processes (``send_signal(SIGTERM)`` is ``TerminateProcess``)
and no process-group kill. A child started with ``CREATE_NEW_PROCESS_GROUP``
(:data:`NEW_GROUP_FLAGS`) gets ``CTRL_BREAK_EVENT`` (SIGBREAK in the child) as its graceful
stop, and the console's Ctrl+C reaches only us, who stop it; ``taskkill /T`` walks the tree
of what it started. On POSIX the graceful stop is SIGTERM, and a child started in a session
of its own (``start_new_session=True``) is a process group that ``killpg`` ends whole, and
that a terminal's Ctrl+C does not reach.

* :data:`NEW_GROUP_FLAGS`, the ``creationflags`` of a child in its own group (0 on POSIX);
* :func:`graceful_stop_signal`, :func:`ask_to_stop`;
* :func:`stop_process`: ask, wait, then (optionally ask once more, then) kill; a second
  Ctrl+C while waiting kills at once;
* :func:`kill_group`: the child and everything it started, then reap it;
* :func:`kill_leftovers`: after a child leading its own group has exited, whatever it started
  and left behind (POSIX: the rest of its group).

Nothing here needs fork.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "NEW_GROUP_FLAGS",
    "ask_to_stop",
    "graceful_stop_signal",
    "kill_group",
    "kill_leftovers",
    "stop_process",
]

if sys.platform == "win32":
    NEW_GROUP_FLAGS = subprocess.CREATE_NEW_PROCESS_GROUP
else:  # POSIX: the group comes from start_new_session=True, where a caller wants one
    NEW_GROUP_FLAGS = 0

# After the polite stop and its timeout: how long a terminated or killed child gets to go.
_REAP_S = 10.0


def graceful_stop_signal() -> int:
    """The graceful stop: SIGTERM, or CTRL_BREAK_EVENT on Windows (the child must have been
    started with :data:`NEW_GROUP_FLAGS`)."""
    if sys.platform == "win32":
        return int(signal.CTRL_BREAK_EVENT)
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        return int(signal.SIGTERM)


def ask_to_stop(proc: subprocess.Popen[Any]) -> None:
    """Send the graceful stop to a child that is still running."""
    if proc.poll() is None:
        proc.send_signal(graceful_stop_signal())


def stop_process(
    proc: subprocess.Popen[Any],
    timeout_s: float,
    *,
    wait: Callable[[float], int] | None = None,
    ask_again: bool = False,
) -> int:
    """Stop ``proc`` for sure and return its exit code: the graceful stop, ``timeout_s`` to
    exit; then, with ``ask_again``, ``terminate()`` (a second SIGTERM, which
    ``lagscope serve`` takes as "stop now"; TerminateProcess on Windows) and a short wait;
    then kill. A KeyboardInterrupt while waiting kills at once and is raised again.
    ``wait`` replaces ``proc.wait`` (a caller that also joins its output reader)."""
    wait_for = wait or proc.wait
    ask_to_stop(proc)
    try:
        try:
            return wait_for(timeout_s)
        except subprocess.TimeoutExpired:
            if not ask_again:
                raise
            proc.terminate()
            return wait_for(_REAP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return wait_for(_REAP_S)
    except KeyboardInterrupt:
        # A second Ctrl+C while stopping: stop now, but stop.
        proc.kill()
        wait_for(_REAP_S)
        raise


def kill_leftovers(proc: subprocess.Popen[Any]) -> None:
    """Kill what an exited child that led its own session (``start_new_session=True``) left
    running in its group: a server's worker orphaned when its master stopped before it (a
    stop signal during granian's respawn). On Windows there is no group to kill once the
    child has gone (``taskkill /T`` walks a live parent's tree), so nothing is done."""
    if sys.platform != "win32":
        # The group outlives its leader while any member lives; gone, it is already clean.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` and everything it started, then reap it (``communicate``, so its
    pipes are drained and closed). On POSIX ``proc`` must lead its own session
    (``start_new_session=True``)."""
    if sys.platform == "win32":
        # taskkill /T walks the child tree; there is no process-group kill on Windows.
        subprocess.run(
            ["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, check=False
        )
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    proc.communicate()

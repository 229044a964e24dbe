"""Child processes of the demo: start one, wait for its readiness line, stop it for sure.

:class:`Child` runs an argv with its output read on a thread; ``start`` returns once a
line starting with the readiness prefix appears (the rest of the line is the URL) or
raises :class:`ChildFailed` with the last output lines if the process exits first or the
timeout passes. Each child leads a process group of its own (a session on POSIX), so a
terminal's Ctrl+C or hangup reaches only the demo, which stops its children itself, on every
platform. ``stop`` asks politely (SIGTERM; CTRL_BREAK_EVENT on Windows), then kills
(:func:`lagscope.procgroup.stop_process`), then kills what the child left in its group.
Nothing here needs fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from lagscope.procgroup import NEW_GROUP_FLAGS, kill_leftovers, stop_process

__all__ = ["Child", "ChildFailed"]


class ChildFailed(Exception):
    """The child exited or stayed silent before it was ready; ``output`` is its tail."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class Child:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready_prefix: str,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ready_prefix = ready_prefix
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = cwd
        self.lines: list[str] = []
        # When each line was read (time.perf_counter seconds), index for index.
        self.line_at_s: list[float] = []
        self.ready_at_s = 0.0
        self.url = ""
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"<Child {self.name} pid={pid} url={self.url or '-'}>"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def tail(self, lines: int = 3) -> str:
        return " | ".join(line.strip() for line in self.lines[-lines:] if line.strip())

    def start(self, timeout_s: float) -> str:
        """Start and wait for readiness; returns the URL from the readiness line."""
        self.launch()
        return self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the process without waiting (see :meth:`wait_ready`)."""
        # Its own process group, so that CTRL_BREAK_EVENT (Windows' graceful stop) can reach
        # it alone, the console's Ctrl+C or a terminal's hangup reaches only us, who stop it,
        # and on POSIX what it starts can be killed with it (kill_leftovers).
        self._proc = subprocess.Popen(
            self.argv,
            creationflags=NEW_GROUP_FLAGS,
            start_new_session=sys.platform != "win32",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=self.env,
            cwd=self.cwd,
        )
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-out", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout_s: float) -> str:
        """Wait for the readiness line; raise ChildFailed (process stopped) without it."""
        ready = self._ready.wait(timeout_s)
        if not self.url:
            self.stop(5.0)
            why = "did not become ready in time" if not ready else "exited before it was ready"
            raise ChildFailed(f"{self.name} {why}", self.tail())
        return self.url

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            self.line_at_s.append(time.perf_counter())
            self.lines.append(line)
            if not self.url and line.startswith(self.ready_prefix):
                self.url = line[len(self.ready_prefix) :].split()[0]
                self.ready_at_s = self.line_at_s[-1]
                self._ready.set()
        self._ready.set()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Stop (graceful first), wait, kill if needed. Idempotent; returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        try:
            code = stop_process(proc, timeout_s)
        finally:
            kill_leftovers(proc)
            if self._reader is not None:
                self._reader.join(5)
            # A grandchild that outlived it (an orphaned server worker) holds the pipe open
            # and the reader blocked in it: closing would wait for the reader's lock forever.
            reading = self._reader is not None and self._reader.is_alive()
            if proc.stdout is not None and not reading:
                proc.stdout.close()
        return code

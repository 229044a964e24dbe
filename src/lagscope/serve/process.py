"""Run ``lagscope serve`` as a child process and wait for its readiness line.

For tests and benchmarks: :class:`ServeProcess` starts ``python -m lagscope serve ...``,
reads its output in a thread, and returns once the ``listening on`` line appears (or
raises with the output if the process exits first). :meth:`ServeProcess.stop` asks for a
graceful stop the way the platform allows and waits for the exit code
(:mod:`lagscope.procgroup`: SIGTERM on POSIX; on Windows the child runs in its own process
group and gets ``CTRL_BREAK_EVENT``). A child that outlives the timeout is terminated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from lagscope.procgroup import NEW_GROUP_FLAGS, graceful_stop_signal, stop_process
from lagscope.serve.server import LISTENING_PREFIX
from lagscope.stopping import StartStop

__all__ = ["ServeProcess", "graceful_stop_signal", "serve_command"]


def serve_command(args: Sequence[str]) -> list[str]:
    """The argv that runs ``lagscope serve ARGS`` with this interpreter."""
    return [sys.executable, "-m", "lagscope", "serve", *args]


class ServeProcess(StartStop):
    """``with ServeProcess(["--demo", "--port", "0"]) as p: p.url``."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 60.0,
        cwd: str | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        """``command`` replaces ``python -m lagscope serve`` (``args`` follow it), e.g.
        ``[python, "manage.py", "lagscope", "serve"]``."""
        self.args = list(args)
        self.command = list(command) if command is not None else None
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.ready_timeout_s = ready_timeout_s
        self.lines: list[str] = []
        self.urls: list[str] = []
        self._ready = threading.Event()
        self._output_changed = threading.Condition()
        self._output_ended = False
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 0)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def start(self) -> ServeProcess:
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(
            serve_command(self.args) if self.command is None else [*self.command, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
            cwd=self.cwd,
            # Windows: its own group, so CTRL_BREAK_EVENT reaches the child only.
            creationflags=NEW_GROUP_FLAGS,
        )
        self._reader = threading.Thread(target=self._read, name="serve-output", daemon=True)
        self._reader.start()
        if not self._ready.wait(self.ready_timeout_s) or not self.urls:
            code = self.stop(timeout_s=10)
            raise RuntimeError(f"lagscope serve did not become ready (exit {code}):\n{self.output}")
        return self

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            with self._output_changed:
                self.lines.append(line)
                self._output_changed.notify_all()
            if line.startswith(LISTENING_PREFIX) and not self.urls:
                self.urls = line[len(LISTENING_PREFIX) :].split()
                self._ready.set()
        with self._output_changed:
            self._output_ended = True
            self._output_changed.notify_all()
        self._ready.set()

    def wait_for_line(self, text: str, timeout_s: float) -> str | None:
        """The first output line holding ``text``, waiting for it up to ``timeout_s``; None
        if none came by then or the output ended without one."""

        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        with self._output_changed:
            self._output_changed.wait_for(
                lambda: found() is not None or self._output_ended, timeout_s
            )
            return found()

    def signal(self, signum: int) -> None:
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout_s)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def stop(self, timeout_s: float = 30.0) -> int:
        """Graceful stop (SIGTERM; CTRL_BREAK_EVENT on Windows), then wait; terminate if it
        does not exit within ``timeout_s``."""
        proc = self._proc
        if proc is None:
            return 0
        # SIGTERM again on POSIX after the timeout: a second signal stops serve at once.
        code = stop_process(proc, timeout_s, wait=self.wait, ask_again=True)
        if proc.stdout is not None:
            proc.stdout.close()
        return code

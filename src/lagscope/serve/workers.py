"""``serve --workers N``: N server processes sharing the parent's listening sockets.

The parent loads the app once (imports, the reference app's migrate + seed, the database
plan; no connection left open), opens the listeners (dual-stack ``localhost`` included)
and starts the workers, handing each the config it resolved (machine-dependent defaults
included; pickled for spawn, so no worker resolves settings again). Each worker builds its
own waitress server on the shared sockets (:func:`lagscope.serve.server.serve_on`),
prewarms its *own* database connections and reports ready; the parent prints the one
readiness line only when every worker is ready. Connections are spread evenly: a worker accepts
only while it holds no more open connections than the least-loaded one
(:mod:`lagscope.serve.balance`, a small table in shared memory that the parent creates).

How the listening sockets reach a worker (:class:`Handoff`):

- ``fork`` (POSIX default): the child inherits them, and the loaded app with them;
- ``spawn`` (Windows, and available on POSIX): the child starts a fresh interpreter and
  loads the app itself (without migrating); after it started, the parent sends each
  socket over the worker's pipe: on Windows ``socket.share(pid)`` /
  ``socket.fromshare()``, the standard library's mechanism for this; on POSIX the
  descriptor itself (``SCM_RIGHTS``, ``multiprocessing.reduction.send_handle``).

The parent restarts a worker that dies, after a bounded backoff (:func:`restart_delay_s`),
and logs it. A graceful stop is forwarded to every worker (each drains as a single server
does, and reports what finished and what was abandoned); a second signal kills them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lagscope.console import keep_stderr_printable
from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.app import AppSpec, LoadedApp, load_app
from lagscope.serve.balance import Balance, LoadTable
from lagscope.serve.database import PrewarmResult
from lagscope.serve.server import serve_on
from lagscope.serve.settings import ServeConfig
from lagscope.stopping import graceful_signals, handle_stop_signals

__all__ = ["StartMethod", "WorkerPool", "default_start_method", "restart_delay_s"]

StartMethod = Literal["fork", "spawn"]
Echo = Callable[[str], None]

# A worker that ran this long before dying starts the backoff over.
HEALTHY_RUN_S = 30.0
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0


def default_start_method(platform: str = sys.platform) -> StartMethod:
    """fork where the OS has it (the loaded app is shared copy-on-write), else spawn."""
    return "spawn" if platform.startswith("win") else "fork"


def restart_delay_s(quick_deaths: int) -> float:
    """Backoff before restarting a worker that died after ``quick_deaths`` deaths in a row
    that each came within :data:`HEALTHY_RUN_S` of its start: 0.5, 1, 2 … capped at 30 s."""
    return float(min(RESTART_MAX_S, RESTART_FIRST_S * 2.0 ** max(0, quick_deaths - 1)))


# ------------------------------------------------------------------------ socket handoff


class Handoff:
    """Sends listening sockets to a spawned worker over its pipe, and rebuilds them there."""

    @staticmethod
    def send(conn: Any, socks: list[socket.socket], pid: int) -> None:
        if sys.platform == "win32":
            conn.send([("share", s.share(pid)) for s in socks])
        else:
            from multiprocessing import reduction

            conn.send([("fd", s.family, s.type) for s in socks])
            for s in socks:
                reduction.send_handle(conn, s.fileno(), pid)

    @staticmethod
    def receive(conn: Any) -> list[socket.socket]:
        items = conn.recv()
        if sys.platform == "win32":
            return [socket.fromshare(item[1]) for item in items]
        else:
            from multiprocessing import reduction

            socks = []
            for item in items:
                fd = reduction.recv_handle(conn)
                socks.append(socket.socket(item[1], item[2], fileno=fd))
            return socks


# ------------------------------------------------------------------------------ worker


@dataclass(frozen=True)
class _WorkerArgs:
    """What a worker starts from (pickled for spawn): the parent's config as resolved
    there, so a worker never resolves settings again."""

    index: int
    spec: AppSpec
    config: ServeConfig


# Set in the parent before a fork: the child uses the app the parent loaded.
_FORKED_APP: LoadedApp | None = None
_FORKED_SOCKS: list[socket.socket] = []


def _worker_main(args: _WorkerArgs, conn: Any, forked: bool, table: LoadTable) -> None:
    """A worker process: serve on the shared sockets until told to stop."""
    keep_stderr_printable()  # a spawned worker's own stderr (a forked one has the parent's)
    config = args.config
    try:
        if forked:
            assert _FORKED_APP is not None
            loaded, socks = _FORKED_APP, list(_FORKED_SOCKS)
        else:
            socks = Handoff.receive(conn)
            loaded = load_app(args.spec, config, migrate=False)
        balance = Balance(table, args.index)
        ws = serve_on(loaded, config, socks, balance)
    except LagscopeError as exc:
        conn.send(("error", exc.one_line(), int(exc.exit_code)))
        return
    except Exception as exc:  # reported to the parent as one line, never a traceback
        conn.send(("error", f"worker: {type(exc).__name__}: {exc}", int(ExitCode.ENVIRONMENT)))
        return
    balance.join()
    conn.send(("ready", os.getpid(), [(r.what, r.connections, r.elapsed_ms) for r in ws.prewarmed]))

    def listen_to_parent() -> None:
        # "stop" from the parent, or the parent gone (EOF): drain and exit.
        with contextlib.suppress(EOFError, OSError):
            while conn.recv() != "stop":
                pass
        ws.stop()

    threading.Thread(target=listen_to_parent, name="lagscope-worker-pipe", daemon=True).start()
    try:
        # A console Ctrl+C reaches every process of the group: drain here too.
        with handle_stop_signals(lambda _s: ws.stop(), graceful_signals()):
            ws.serve()
    except KeyboardInterrupt:
        pass
    with contextlib.suppress(OSError):
        conn.send(("stopped", ws.in_flight_at_stop, ws.finished, ws.abandoned))
    if loaded.databases is not None and not ws.aborted:
        loaded.databases.shutdown()


# ------------------------------------------------------------------------------ parent


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Any
    started_s: float
    ready: bool = False
    pid: int = 0
    prewarmed: list[PrewarmResult] = field(default_factory=list)
    stopped: tuple[int, int, int] | None = None
    error: tuple[str, int] | None = None


@dataclass
class WorkerPool:
    """The parent's side: start, watch, restart and stop the workers."""

    spec: AppSpec
    config: ServeConfig
    loaded: LoadedApp
    socks: list[socket.socket]
    echo: Echo
    start_method: StartMethod = field(default_factory=default_start_method)
    clock: Callable[[], float] = time.monotonic
    workers: dict[int, _Worker] = field(default_factory=dict)
    restarts: int = 0
    _quick_deaths: dict[int, int] = field(default_factory=dict)
    _restart_at: dict[int, float] = field(default_factory=dict)
    table: LoadTable | None = None

    def start_worker(self, index: int) -> _Worker:
        global _FORKED_APP, _FORKED_SOCKS
        ctx: Any = multiprocessing.get_context(self.start_method)
        if self.table is None:
            self.table = LoadTable(self.config.workers, ctx)
        self.table.clear(index)  # counts again once the new worker's loop runs
        parent_end, child_end = ctx.Pipe(duplex=True)
        forked = self.start_method == "fork"
        args = _WorkerArgs(index, self.spec, self.config)
        if forked:
            _FORKED_APP, _FORKED_SOCKS = self.loaded, self.socks
        process = ctx.Process(
            target=_worker_main,
            args=(args, child_end, forked, self.table),
            name=f"lagscope-serve-worker-{index}",
            daemon=False,
        )
        process.start()
        child_end.close()
        if not forked:
            Handoff.send(parent_end, self.socks, int(process.pid or 0))
        worker = _Worker(index, process, parent_end, self.clock())
        self.workers[index] = worker
        return worker

    def _poll(self, worker: _Worker) -> None:
        """Read what the worker said so far."""
        with contextlib.suppress(EOFError, OSError):
            while worker.conn.poll():
                message = worker.conn.recv()
                if message[0] == "ready":
                    worker.ready, worker.pid = True, int(message[1])
                    worker.prewarmed = [PrewarmResult(*r) for r in message[2]]
                elif message[0] == "error":
                    worker.error = (str(message[1]), int(message[2]))
                elif message[0] == "stopped":
                    worker.stopped = (int(message[1]), int(message[2]), int(message[3]))

    def start_all(self, timeout_s: float) -> None:
        """Start every worker and wait until each is ready (or raise the first error)."""
        for index in range(self.config.workers):
            self.start_worker(index)
        deadline = self.clock() + timeout_s
        while True:
            for worker in self.workers.values():
                self._poll(worker)
                if worker.error is not None:
                    self.kill_all()
                    raise _error_from(worker.error)
                if not worker.ready and not worker.process.is_alive():
                    self.kill_all()
                    raise LagscopeError(
                        "worker",
                        f"worker {worker.index} exited with code {worker.process.exitcode} "
                        "before it was ready",
                        ExitCode.ENVIRONMENT,
                    )
            if all(w.ready for w in self.workers.values()):
                return
            if self.clock() >= deadline:
                self.kill_all()
                raise LagscopeError(
                    "worker", f"workers not ready within {timeout_s:g} s", ExitCode.CONNECT
                )
            self._wait(0.05)

    def _wait(self, timeout_s: float) -> None:
        """Until a worker says something or exits (a dead one awaiting restart excluded)."""
        live = [
            w for i, w in self.workers.items() if i not in self._restart_at and not w.conn.closed
        ]
        handles: list[Any] = [w.process.sentinel for w in live] + [w.conn for w in live]
        if handles:
            multiprocessing.connection.wait(handles, timeout_s)
        else:
            time.sleep(timeout_s)

    def watch(self, stopping: threading.Event, interval_s: float = 0.5) -> None:
        """Until ``stopping``: restart dead workers with backoff, log their readiness."""
        while not stopping.is_set():
            self._wait(interval_s)
            now = self.clock()
            for index, worker in list(self.workers.items()):
                was_ready = worker.ready
                self._poll(worker)
                if worker.ready and not was_ready:
                    self.echo(f"lagscope serve: worker {index} ready again (pid {worker.pid})")
                if worker.error is not None and index not in self._restart_at:
                    self.echo(f"lagscope serve: worker {index}: {worker.error[0]}")
                if worker.process.is_alive() or index in self._restart_at or stopping.is_set():
                    continue
                lived_s = now - worker.started_s
                deaths = 1 if lived_s >= HEALTHY_RUN_S else self._quick_deaths.get(index, 0) + 1
                self._quick_deaths[index] = deaths
                delay_s = restart_delay_s(deaths)
                self.echo(
                    f"lagscope serve: worker {index} (pid {worker.process.pid}) exited with "
                    f"code {worker.process.exitcode} after {lived_s:.1f} s; restarting in "
                    f"{delay_s:g} s"
                )
                worker.conn.close()
                if self.table is not None:
                    self.table.clear(index)  # the others stop waiting for its count
                self._restart_at[index] = now + delay_s
            for index, at in list(self._restart_at.items()):
                if now >= at and not stopping.is_set():
                    del self._restart_at[index]
                    self.restarts += 1
                    self.start_worker(index)

    def stop_all(self, timeout_s: float) -> tuple[int, int, int]:
        """Forward a graceful stop; wait; returns (in flight, finished, abandoned) summed."""
        for worker in self.workers.values():
            with contextlib.suppress(OSError):
                worker.conn.send("stop")
        deadline = self.clock() + timeout_s
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - self.clock()))
            self._poll(worker)
        totals = [0, 0, 0]
        for index, worker in sorted(self.workers.items()):
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(5)
                self.echo(f"lagscope serve: worker {index} did not stop in time; killed")
            self._poll(worker)
            if worker.stopped is not None:
                totals = [a + b for a, b in zip(totals, worker.stopped, strict=True)]
                self.echo(
                    f"lagscope serve: worker {index} stopped: {worker.stopped[0]} in flight, "
                    f"{worker.stopped[1]} finished, {worker.stopped[2]} abandoned"
                )
            else:
                self.echo(
                    f"lagscope serve: worker {index} exited with code "
                    f"{worker.process.exitcode} without a report"
                )
            worker.conn.close()
        return totals[0], totals[1], totals[2]

    def kill_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.is_alive():
                worker.process.kill()
        for worker in self.workers.values():
            worker.process.join(5)
            with contextlib.suppress(OSError):
                worker.conn.close()


def _error_from(error: tuple[str, int]) -> LagscopeError:
    phase, _, message = error[0].partition(": ")
    return LagscopeError(phase, message, ExitCode(error[1]))

"""``lagscope serve --reload``: the front process's run.

This process never imports the app. It listens (the same sockets for the whole run),
accepts every client connection and hands its socket to the current app process
(:mod:`lagscope.serve.reload.front`, :mod:`lagscope.serve.reload.handoff`), on an asyncio
loop in the main thread, and starts app processes (:mod:`lagscope.serve.reload.child`, a
fresh interpreter each: no fork, so Windows works the same). On a change the watcher reports
(:mod:`lagscope.serve.reload.watch`), a new app process starts beside the current one; once
it has imported the app, passed Django's checks and prewarmed its database connections, it
replays the latest GETs the current one answered, and only then does the front switch. The
next app process is started as a spare while the current one serves (interpreter and
libraries loaded, the project not yet). The old process finishes what it is running, hands
each client connection back as soon as it is idle (the front hands it on to the new one),
then stops. A new process that fails leaves the old one serving; a change during a start
replaces that start (the newest code wins).

Stop signals are :mod:`lagscope.stopping`'s, as for serve without ``--reload``: the first
stops accepting and stops every app process (each closes its idle connections and lets its
requests in flight finish); a second stops at once and kills them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lagscope.console import printable
from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.app import AppSpec
from lagscope.serve.reload import handoff
from lagscope.serve.reload.child import CHILD_ENV, FAILED_EXIT
from lagscope.serve.reload.front import Front
from lagscope.serve.reload.handoff import Carrier, PipeCarrier, UnixCarrier
from lagscope.serve.reload.watch import Roots, Watcher
from lagscope.serve.server import LISTENING_PREFIX, open_listeners, url
from lagscope.serve.settings import ServeConfig, config_as_dict
from lagscope.stopping import graceful_signals, handle_stop_signals

__all__ = ["RELOADED_PREFIX", "run_reload"]

Echo = Callable[[str], None]
PREFIX = "lagscope serve: "
# The line printed after each switch; tests and the bench wait for it.
RELOADED_PREFIX = PREFIX + "reloaded in "
# The warm-up of a new app process (recent GETs replayed) never holds a switch longer.
WARM_TIMEOUT_S = 2.0
# After a switch, the next spare starts this much later (see _bring_up).
SPARE_DELAY_S = 2.0


class ChildFailed(Exception):
    def __init__(self, message: dict[str, Any] | None, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(eq=False)
class AppProcess:
    """One app process, as the front process sees it."""

    popen: subprocess.Popen[str]
    reason: str
    started_s: float
    loop: asyncio.AbstractEventLoop
    ready: asyncio.Future[dict[str, Any]]
    exited: asyncio.Future[int]
    carrier: Carrier
    # Every writer of the process's stdin takes it (on Windows the carrier writes there).
    stdin_lock: threading.Lock
    stopped: dict[str, Any] | None = None
    killed: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    # Client connections handed to it and not yet back or closed (see Front).
    held: int = 0
    # The answer to "recent" and the end of the warm-up, when asked.
    recent: asyncio.Future[list[Any]] | None = None
    warmed: asyncio.Future[dict[str, Any]] | None = None

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def tell(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError), self.stdin_lock:
            assert self.popen.stdin is not None
            self.popen.stdin.write(line + "\n")
            self.popen.stdin.flush()

    def go(self, migrate: bool, reason: str) -> None:
        """Tell the spare to import the project now (its newest code)."""
        self.reason = reason
        self.started_s = time.perf_counter()
        self.tell("go migrate" if migrate else "go")

    def stop(self) -> None:
        """Ask for a graceful drain (the process exits once it is done)."""
        self.tell("stop")
        with contextlib.suppress(OSError, ValueError), self.stdin_lock:
            assert self.popen.stdin is not None
            self.popen.stdin.close()

    def kill(self) -> None:
        self.killed = True
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                self.popen.kill()


class Reloader:
    def __init__(self, spec: AppSpec, config: ServeConfig, echo: Echo) -> None:
        self.spec = spec
        self.config = config
        self.echo = echo
        self.front = Front(config.connection_limit, lambda line: echo(PREFIX + line))
        self.current: AppProcess | None = None
        self.pending: AppProcess | None = None
        self.spare: AppProcess | None = None
        self.processes: list[AppProcess] = []
        self.watcher: Watcher | None = None
        self.stop_requested: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reloads = 0
        self.failures = 0
        self.exit_code = 0

    # -- app processes
    def _child_env(self, carrier_fd: int | None) -> dict[str, str]:
        env = dict(os.environ)
        env[CHILD_ENV] = json.dumps(
            {
                "spec": asdict(self.spec),
                "config": config_as_dict(self.config),
                "front_pid": os.getpid(),
                "carrier_fd": carrier_fd,
            }
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def start_child(self, migrate: bool, reason: str) -> AppProcess:
        """The spare (or a new process) told to import the project now."""
        proc, self.spare = self.spare, None
        if proc is None or proc.exited.done():
            proc = self._spawn()
        proc.go(migrate, reason)
        return proc

    def _make_spare(self) -> None:
        """Start the next app process now, while the current one serves (see child.py)."""
        if self.spare is None and self.pending is None and not self.front.stopping:
            self.spare = self._spawn()

    def _spawn(self) -> AppProcess:
        loop = self.loop
        assert loop is not None
        command = [sys.executable, "-m", "lagscope.serve.reload.child"]
        pipes: dict[str, Any] = {
            "stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": None, "text": True,
            "encoding": "utf-8",
        }  # fmt: skip
        lock = threading.Lock()
        carrier: Carrier
        if sys.platform == "win32":
            popen = subprocess.Popen(command, env=self._child_env(None), **pipes)
            assert popen.stdin is not None
            carrier = PipeCarrier(popen.stdin, popen.pid, lock)
        else:
            ours, theirs = handoff.pair()
            try:
                popen = subprocess.Popen(
                    command,
                    env=self._child_env(theirs.fileno()),
                    pass_fds=(theirs.fileno(),),
                    **pipes,
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            carrier = UnixCarrier(ours)
        proc = AppProcess(
            popen,
            "spare",
            time.perf_counter(),
            loop,
            loop.create_future(),
            loop.create_future(),
            carrier,
            lock,
        )
        self.processes.append(proc)
        threading.Thread(
            target=self._read, args=(proc,), name=f"lagscope-reload-{popen.pid}", daemon=True
        ).start()
        if isinstance(carrier, UnixCarrier):
            threading.Thread(
                target=carrier.serve,
                args=(functools.partial(self._handoff_from_thread, proc),),
                name=f"lagscope-handoff-{popen.pid}",
                daemon=True,
            ).start()
        return proc

    def _handoff_from_thread(
        self, proc: AppProcess, message: dict[str, Any], sock: socket.socket | None
    ) -> None:
        try:
            proc.loop.call_soon_threadsafe(self.front.on_message, proc, message, sock)
        except RuntimeError:  # the loop is closed: the run is over
            if sock is not None:
                sock.close()

    def _read(self, proc: AppProcess) -> None:
        """The app process's control messages, handed to the loop; then its exit."""
        assert proc.popen.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in proc.popen.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    proc.loop.call_soon_threadsafe(self._on_message, proc, message)
        code = proc.popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            proc.loop.call_soon_threadsafe(self._on_exit, proc, code)

    def _on_message(self, proc: AppProcess, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind in ("conn", "closed"):  # Windows: the carrier is this pipe
            self.front.on_message(proc, message, handoff.unpack(message))
        elif kind == "recent" and proc.recent is not None and not proc.recent.done():
            requests = message.get("requests")
            proc.recent.set_result(requests if isinstance(requests, list) else [])
        elif kind == "warmed" and proc.warmed is not None and not proc.warmed.done():
            proc.warmed.set_result(message)
        elif kind == "ready" and not proc.ready.done():
            proc.info = message
            proc.ready.set_result(message)
        elif kind in ("error", "failed") and not proc.ready.done():
            proc.ready.set_exception(ChildFailed(message, int(message.get("exit", FAILED_EXIT))))
        elif kind == "stopped":
            proc.stopped = message

    def _on_exit(self, proc: AppProcess, code: int) -> None:
        self.front.exited(proc)
        if isinstance(proc.carrier, UnixCarrier):
            proc.carrier.close()
        if not proc.ready.done():
            proc.ready.set_exception(ChildFailed(None, code))
        if not proc.exited.done():
            proc.exited.set_result(code)
        if proc is self.spare:
            self.spare = None
        if proc is self.current and not self.front.stopping and not proc.killed:
            # It died while serving: start a new one, as after an edit.
            self.echo(
                f"{PREFIX}app process (pid {proc.pid}) exited with code {code}; starting another"
            )
            self.current = None
            self.on_change([], reason="the app process exited")

    # -- reloads
    def on_change(self, paths: list[str], reason: str | None = None) -> None:
        """In the loop: start a new app process for these changes."""
        if self.front.stopping or self.stop_requested is None or self.stop_requested.is_set():
            return
        if reason is None:
            first = os.path.relpath(paths[0]) if paths else "?"
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            reason = f"{printable(first)}{more} changed"  # a file name may hold anything
        if self.pending is not None:
            # A start under way is for older code: the newest wins.
            self.pending.kill()
        proc = self.start_child(migrate=False, reason=reason)
        self.pending = proc
        assert self.loop is not None
        self.loop.create_task(self._bring_up(proc))

    async def _bring_up(self, proc: AppProcess) -> None:
        try:
            info = await proc.ready
        except ChildFailed as exc:
            if proc is self.pending:
                self.pending = None
                self.failures += 1
                what = (
                    printable(str(exc.message["line"]))
                    if exc.message and "line" in exc.message
                    else ("the error is above")
                )
                still = (
                    f"pid {self.current.pid} keeps serving the previous code"
                    if self.current is not None
                    else "nothing is serving until the next good change"
                )
                self.echo(f"{PREFIX}reload failed ({proc.reason}): {what}; {still}")
            return
        if proc is not self.pending or self.front.stopping:
            proc.kill()
            return
        warm_s = time.perf_counter()
        warmed = await self._warm(proc)
        warm_ms = (time.perf_counter() - warm_s) * 1000
        if proc is not self.pending or self.front.stopping:
            proc.kill()
            return
        self.pending = None
        old = self.current
        self.front.switch(proc)
        self.current = proc
        self.reloads += 1
        elapsed_ms = (time.perf_counter() - proc.started_s) * 1000
        draining = f"; pid {old.pid} hands its connections over and drains" if old else ""
        self.echo(
            f"{RELOADED_PREFIX}{elapsed_ms:.0f} ms ({proc.reason}): import "
            f"{info['import_ms']:.0f} ms (libraries {info['libraries_ms']:.0f} ms before), "
            f"checks {info['checks_ms']:.0f} ms, prewarm "
            f"{info['prewarm_ms']:.0f} ms, warm-up {warm_ms:.0f} ms ({warmed} request(s)); "
            f"pid {proc.pid} serving{draining}"
        )
        if old is not None:
            # After every connection it was handed (same ordered channel): it hands each
            # back once idle, then stops by itself.
            with contextlib.suppress(OSError):
                old.carrier.send({"kind": "retire"})
        # Not at once: the first requests after an edit come now, and the spare's imports
        # would take CPU from them (2 vCPU: +50-250 ms on the first page, measured).
        assert self.loop is not None
        self.loop.call_later(SPARE_DELAY_S, self._make_spare)

    async def _warm(self, proc: AppProcess) -> int:
        """Replay in ``proc`` the recent GETs the current process answered (see
        handed.py); bounded by :data:`WARM_TIMEOUT_S` in all. Returns how many answered."""
        assert self.loop is not None
        deadline = self.loop.time() + WARM_TIMEOUT_S
        current = self.current
        if current is None or current.exited.done():
            return 0
        current.recent = self.loop.create_future()
        current.tell(json.dumps({"kind": "recent"}))
        try:
            requests = await asyncio.wait_for(asyncio.shield(current.recent), WARM_TIMEOUT_S / 4)
        except asyncio.TimeoutError:
            return 0
        if not requests:
            return 0
        proc.warmed = self.loop.create_future()
        left_s = max(0.0, deadline - self.loop.time())
        proc.tell(json.dumps({"kind": "warm", "requests": requests, "timeout_s": left_s}))
        try:
            done = await asyncio.wait_for(asyncio.shield(proc.warmed), left_s + 0.5)
        except asyncio.TimeoutError:
            return 0
        return int(done.get("answered", 0))

    # -- the run
    async def main(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.stop_requested = asyncio.Event()
        config = self.config
        socks = open_listeners(config.listen_hosts, config.port, config.backlog)
        port = int(socks[0].getsockname()[1])
        urls = [url(s.getsockname()[0], port) for s in socks]
        await self.front.listen(socks)
        first = self.start_child(migrate=True, reason="start")
        try:
            info = await first.ready
        except ChildFailed as exc:
            await self._end_all(5.0)
            if exc.message is not None and "line" in exc.message:
                phase, _, text = str(exc.message["line"]).partition(": ")
                raise LagscopeError(phase, text, ExitCode(int(exc.message["exit"]))) from None
            raise LagscopeError(
                "reload",
                "the app failed to load (the error is above); fix it and start again",
                ExitCode.USAGE,
            ) from None
        except BaseException:
            await self._end_all(5.0)
            raise
        self.front.switch(first)
        self.current = first
        self._report_startup(info)
        self._make_spare()
        roots = Roots(tuple(info["watch"]), tuple(info.get("templates", [])))
        self.watcher = Watcher(roots, self._changed_from_thread)
        how = self.watcher.start()
        self.echo(f"{PREFIX}reload: watching {printable(', '.join(roots.all))} ({how})")
        await self.front.start()
        self.echo(LISTENING_PREFIX + " ".join(urls))
        self._wake()
        await self.stop_requested.wait()
        return await self._graceful_stop()

    def _wake(self) -> None:
        """Wake the loop every second, so a signal's handler runs promptly on Windows."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_later(1.0, self._wake)

    def _changed_from_thread(self, paths: list[str]) -> None:
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.on_change, paths)

    def _report_startup(self, info: dict[str, Any]) -> None:
        self.echo(
            f"{PREFIX}{info['describe']} on waitress, {self.config.threads} threads, "
            f"behind the reload front (pid {os.getpid()}; app process pid {info['pid']})"
        )
        for note in info["notes"]:
            self.echo(f"{PREFIX}{note}")
        for alias, mode, why in info["plans"]:
            self.echo(f"{PREFIX}connections {alias}: {mode} ({why})")
        for what, elapsed_ms in info["prewarmed"]:
            self.echo(f"{PREFIX}prewarmed {what} in {elapsed_ms:.1f} ms")

    async def _graceful_stop(self) -> int:
        if self.watcher is not None:
            self.watcher.stop()
        for idle in (self.pending, self.spare):
            if idle is not None:
                idle.kill()
        self.front.stop()
        await self._end_all(self.config.shutdown_timeout + 5)
        reports = [p.stopped for p in self.processes if p.stopped is not None]
        in_flight = sum(int(r.get("in_flight", 0)) for r in reports)
        abandoned = sum(int(r.get("abandoned", 0)) for r in reports)
        if in_flight == 0:
            self.echo(f"{PREFIX}stopped (no request was in flight)")
        elif abandoned == 0:
            self.echo(f"{PREFIX}stopped ({in_flight} request(s) were in flight, all finished)")
        else:
            self.echo(
                f"{PREFIX}stopped ({in_flight} request(s) were in flight: "
                f"{in_flight - abandoned} finished, {abandoned} abandoned after "
                f"--shutdown-timeout {self.config.shutdown_timeout:g} s)"
            )
        return 0

    async def _end_all(self, timeout_s: float) -> None:
        """Stop every app process still running (gracefully, then killed after
        ``timeout_s``) and wait for each to exit."""
        live = [p for p in self.processes if not p.exited.done()]
        for proc in live:
            if proc.ready.done() and not proc.killed:
                proc.stop()
            else:
                proc.kill()  # still importing: nothing to drain
        if live:
            await asyncio.wait(
                [asyncio.ensure_future(asyncio.shield(p.exited)) for p in live], timeout=timeout_s
            )
        for proc in live:
            if not proc.exited.done():
                proc.kill()
                await asyncio.to_thread(proc.popen.wait, 5)

    def kill_all(self) -> None:
        for proc in self.processes:
            proc.kill()
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)


def run_reload(
    spec: AppSpec,
    config: ServeConfig,
    echo: Echo,
    stop_signals: tuple[int, ...] | None = None,
) -> int:
    """Serve with reloading until a stop signal; returns the exit code."""
    reloader = Reloader(spec, config, echo)
    signals = graceful_signals() if stop_signals is None else stop_signals
    loop = asyncio.new_event_loop()
    stopped = threading.Event()

    def graceful(signum: int) -> None:
        echo(f"{PREFIX}{_signal_name(signum)}, finishing in-flight requests")
        if reloader.stop_requested is not None:
            loop.call_soon_threadsafe(reloader.stop_requested.set)

    def duplicate(signum: int) -> None:
        echo(f"{PREFIX}{_signal_name(signum)} again within 1 s, taken as the same stop")

    try:
        with handle_stop_signals(
            graceful, signals, wait_stopped=stopped.wait, on_duplicate=duplicate
        ):
            try:
                return loop.run_until_complete(reloader.main())
            except KeyboardInterrupt:
                reloader.kill_all()
                echo(f"{PREFIX}second signal, stopped without waiting (app processes killed)")
                return int(ExitCode.INTERRUPTED)
    finally:
        stopped.set()
        reloader.kill_all()
        with contextlib.suppress(RuntimeError):
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"

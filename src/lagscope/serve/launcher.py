"""Run the loaded app under waitress (or granian): listen sockets, prewarm, graceful stop.

This is the one module of ``lagscope.serve`` that owns client sockets and signals.

Waitress: the listen sockets are opened here (so ``localhost`` gets 127.0.0.1 *and* ::1 on
the same port, even with port 0) and handed to ``waitress.create_server(sockets=...)``.
Worker-thread connections are prewarmed through waitress's own task queue before the loop
starts, so the first request finds a warm connection. On SIGINT/SIGTERM the listeners
close, in-flight requests finish and are flushed (up to ``shutdown_timeout``), then the
loop stops. Signals are handled with ``signal.signal`` for SIGINT/SIGTERM only, and the
loop wakes every second, so Ctrl+C works on Windows too.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.app import (
    AppSpec,
    LoadedApp,
    PrewarmResult,
    ThreadPrewarm,
    load_app,
    prewarm_pools,
    shutdown_databases,
)
from lagscope.serve.settings import ServeConfig

__all__ = ["LISTENING_PREFIX", "WaitressServer", "open_listeners", "run", "start_waitress"]

# Start-up prints one line starting with this once it serves; the rest of the line is the
# space-separated URLs. Subprocess users (tests, bench) wait for it: it is the readiness
# signal, and carries the port when --port 0 was given.
LISTENING_PREFIX = "lagscope serve: listening on "

Echo = Callable[[str], None]


def _echo_stdout(line: str) -> None:
    print(line, flush=True)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def open_listeners(hosts: tuple[str, ...], port: int, backlog: int) -> list[socket.socket]:
    """Bind every host on one port (the first bound picks it when ``port`` is 0).

    A host other than the first that cannot be bound because the address family is missing
    (no IPv6 on this machine) is skipped; a port clash on it with port 0 retries.
    """
    attempts = 5 if port == 0 else 1
    last: OSError | None = None
    for _ in range(attempts):
        socks: list[socket.socket] = []
        chosen = port
        try:
            for index, host in enumerate(hosts):
                try:
                    infos = socket.getaddrinfo(
                        host, chosen, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                    )
                except socket.gaierror as exc:
                    raise LagscopeError(
                        "listen", f"cannot resolve {host!r}: {exc}", ExitCode.RESOLVE
                    ) from exc
                family, socktype, proto, _, addr = infos[0]
                try:
                    sock = socket.socket(family, socktype, proto)
                except OSError:
                    if index > 0:
                        continue  # e.g. no IPv6 stack: 127.0.0.1 alone still serves
                    raise
                try:
                    if family == socket.AF_INET6 and len(hosts) > 1:
                        # The IPv4 address has its own socket on the same port.
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    if not sys.platform.startswith("win"):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(addr)
                    sock.listen(backlog)
                except OSError as exc:
                    sock.close()
                    if index > 0 and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                        continue
                    raise
                socks.append(sock)
                if index == 0:
                    chosen = int(sock.getsockname()[1])
            return socks
        except OSError as exc:
            for s in socks:
                s.close()
            last = exc
            if exc.errno != errno.EADDRINUSE or port != 0:
                break
    where = ", ".join(hosts)
    raise LagscopeError(
        "listen", f"cannot listen on {where} port {port}: {last}", ExitCode.ENVIRONMENT
    )


@dataclass
class WaitressServer:
    """A started (listening, prewarmed) waitress server; :meth:`serve` runs its loop."""

    server: Any
    urls: list[str]
    port: int
    prewarmed: list[PrewarmResult] = field(default_factory=list)
    shutdown_timeout_s: float = 30.0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)
    in_flight_at_stop: int = 0
    _wake: Any = None

    def __post_init__(self) -> None:
        from waitress.server import BaseWSGIServer

        # The trigger that wakes the loop thread. It sits in the map on its own, so it keeps
        # working after the listeners are closed.
        for obj in list(self._map().values()):
            if isinstance(obj, BaseWSGIServer):
                self._wake = obj.trigger
                break

    def _map(self) -> dict[int, Any]:
        return self.server._map if hasattr(self.server, "_map") else self.server.map  # type: ignore[no-any-return]

    def serve(self) -> None:
        """Run the loop until :meth:`stop` (from any thread) has drained it."""
        from waitress import wasyncore

        try:
            wasyncore.loop(timeout=1.0, map=self._map(), use_poll=False)
        finally:
            self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
            self._stopped.set()

    def stop(self) -> None:
        """Graceful stop: stop accepting, let in-flight requests finish, then end the loop.

        Thread-safe and idempotent; returns at once (the drain runs in its own thread)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._trigger(self._close_listeners)
        threading.Thread(target=self._drain, name="lagscope-drain", daemon=True).start()

    def wait_stopped(self, timeout_s: float) -> bool:
        return self._stopped.wait(timeout_s)

    def _trigger(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the loop thread."""
        assert self._wake is not None
        # OSError: the loop ran the thunk (woken by an earlier pull) and it closed the
        # trigger before our own write reached it: nothing left to wake.
        with contextlib.suppress(OSError):
            self._wake.pull_trigger(fn)

    def _close_listeners(self) -> None:
        from waitress import wasyncore
        from waitress.server import BaseWSGIServer

        for obj in list(self._map().values()):
            if isinstance(obj, BaseWSGIServer) and obj.accepting:
                obj.accepting = False
                # dispatcher.close, not the server's close: keep its trigger for the drain.
                wasyncore.dispatcher.close(obj)

    def _busy(self) -> int:
        """Requests not yet fully answered: channels with a request queued, running or
        still flushing its output (a running request also holds a dispatcher thread)."""
        from waitress.channel import HTTPChannel

        dispatcher = self.server.task_dispatcher
        channels = sum(
            1
            for obj in list(self._map().values())
            if isinstance(obj, HTTPChannel) and (obj.requests or obj.total_outbufs_len)
        )
        return max(channels, int(dispatcher.active_count) + len(dispatcher.queue))

    def _drain(self) -> None:
        from waitress import wasyncore

        deadline = time.monotonic() + self.shutdown_timeout_s
        self.in_flight_at_stop = self._busy()
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.02)
        done = threading.Event()

        def close_all() -> None:
            wasyncore.close_all(self._map())
            done.set()

        self._trigger(close_all)
        if not done.wait(5):
            # The loop is stuck (should not happen): close from here as a last resort.
            wasyncore.close_all(self._map())


def start_waitress(
    loaded: LoadedApp, config: ServeConfig, echo: Echo = _echo_stdout
) -> WaitressServer:
    """Listen, create the waitress server, and prewarm; the loop is not running yet."""
    try:
        from waitress.server import create_server
    except ImportError as exc:
        raise LagscopeError(
            "config", "waitress is not installed (pip install 'lagscope[serve]')", ExitCode.USAGE
        ) from exc
    pools = prewarm_pools(loaded, config.prewarm_timeout) if config.prewarm else []
    socks = open_listeners(config.listen_hosts, config.port, config.backlog)
    port = int(socks[0].getsockname()[1])
    try:
        server = create_server(loaded.app, sockets=socks, **config.waitress_adjustments())
    except Exception:
        for s in socks:
            s.close()
        raise
    if not config.tcp_nodelay:
        # Per-server Adjustments instance; waitress reads it for each accepted socket.
        server.adj.socket_options = []
    urls = [_url(s.getsockname()[0], port) for s in socks]
    ws = WaitressServer(server, urls, port, list(pools), shutdown_timeout_s=config.shutdown_timeout)
    persistent = [p for p in loaded.plans if p.mode == "persistent"]
    if persistent:
        threads = config.threads
        start = time.perf_counter()
        barrier = threading.Barrier(threads + 1, timeout=config.prewarm_timeout)
        tasks = [ThreadPrewarm(loaded, barrier) for _ in range(threads)]
        for task in tasks:
            # Duck-typed task (defer/service/cancel), as waitress's own tasks are.
            server.task_dispatcher.add_task(task)  # type: ignore[arg-type]
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        errors = [t.error for t in tasks if t.error is not None]
        if errors or barrier.broken:
            wasyncore_close(ws)
            reason = f"{type(errors[0]).__name__}: {errors[0]}" if errors else "timed out"
            raise LagscopeError(
                "prewarm",
                f"could not open a database connection in every worker thread ({reason})",
                ExitCode.CONNECT,
            )
        opened = sum(t.opened for t in tasks)
        aliases = ", ".join(p.alias for p in persistent)
        ws.prewarmed.append(
            PrewarmResult(
                f"{aliases}: persistent, one connection in each of {threads} worker threads",
                opened,
                (time.perf_counter() - start) * 1000,
            )
        )
    return ws


def wasyncore_close(ws: WaitressServer) -> None:
    from waitress import wasyncore

    wasyncore.close_all(ws._map())
    ws.server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)


@contextlib.contextmanager
def _signals_stop(stop: Callable[[], None], echo: Echo) -> Iterator[None]:
    """SIGINT/SIGTERM -> graceful stop; a second signal -> stop now (KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise KeyboardInterrupt
        echo(f"lagscope serve: {signal.Signals(signum).name}, finishing in-flight requests")
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _report_startup(loaded: LoadedApp, config: ServeConfig, echo: Echo) -> None:
    echo(f"lagscope serve: {loaded.spec.describe()} on {config.server}, {config.threads} threads")
    for note in loaded.notes:
        echo(f"lagscope serve: {note}")
    for plan in loaded.plans:
        echo(f"lagscope serve: connections {plan.alias}: {plan.mode} ({plan.why})")


def _report_prewarm(results: list[PrewarmResult], config: ServeConfig, echo: Echo) -> None:
    if not config.prewarm:
        echo("lagscope serve: prewarm off: the first request on each thread pays a connect")
    for r in results:
        echo(f"lagscope serve: prewarmed {r.what} in {r.elapsed_ms:.1f} ms")


def run(spec: AppSpec, config: ServeConfig, echo: Echo = _echo_stdout) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code (0 after a graceful stop)."""
    if config.server == "granian":
        return _run_granian(spec, config, echo)
    loaded = load_app(spec, config)
    _report_startup(loaded, config, echo)
    try:
        ws = start_waitress(loaded, config, echo)
        _report_prewarm(ws.prewarmed, config, echo)
        echo(LISTENING_PREFIX + " ".join(ws.urls))
        with _signals_stop(ws.stop, echo):
            try:
                ws.serve()
            except KeyboardInterrupt:
                echo("lagscope serve: second signal, stopped without waiting")
                wasyncore_close(ws)
                return int(ExitCode.INTERRUPTED)
        echo(
            f"lagscope serve: stopped ({ws.in_flight_at_stop} request(s) were in flight "
            "and finished)"
        )
        return 0
    finally:
        if loaded.uses_django:
            shutdown_databases()


# ------------------------------------------------------------------------------ granian

SPEC_ENV = "LAGSCOPE_SERVE_SPEC"
URL_ENV = "LAGSCOPE_SERVE_URL"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _run_granian(spec: AppSpec, config: ServeConfig, echo: Echo) -> int:
    try:
        from granian import Granian
        from granian.constants import Interfaces
    except ImportError as exc:
        raise LagscopeError(
            "config",
            "--server granian needs the granian extra (pip install 'lagscope[granian]')",
            ExitCode.USAGE,
        ) from exc
    # granian binds one address; `localhost` means 127.0.0.1 there (documented gap).
    host = "127.0.0.1" if config.host == "localhost" else config.host
    port = config.port or _free_port(host)
    # The workers are separate processes that import the app themselves: hand them the
    # spec and the resolved settings through the environment.
    os.environ[SPEC_ENV] = json.dumps(
        {
            "kind": spec.kind,
            "target": spec.target,
            "database": spec.database,
            "overrides": {k: config.values[k] for k in config.given},
        }
    )
    os.environ[URL_ENV] = _url(host, port)
    echo(f"lagscope serve: {spec.describe()} on granian, {config.threads} blocking threads")
    server = Granian(
        "lagscope.serve.granian_entry:create_app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=1,
        blocking_threads=config.threads,
        backlog=config.backlog,
        factory=True,
        log_access=False,
    )
    server.serve()
    return 0

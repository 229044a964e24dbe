"""The waitress server on sockets we listen on: listen, build, prewarm, loop, graceful drain.

What a single ``lagscope serve`` and each ``--workers`` process run, so the launcher and
the worker processes both call into it (and it into neither). The listen sockets are
opened here (:func:`open_listeners`, so ``localhost`` gets 127.0.0.1 *and* ::1 on the same
port, even with port 0) and handed to :func:`lagscope.serve.accept.build_server`.
Worker-thread connections are prewarmed through waitress's own task queue before the loop
starts, so the first request finds a warm connection. :meth:`WaitressServer.stop` closes
the listeners and idle connections, lets in-flight requests finish and be flushed (up to
``shutdown_timeout``), and counts how many finished and how many were abandoned.

Waitress's "Task queue depth is N" warning (logger ``waitress.queue``, one line per
request that has to wait for a thread) is summarised by :class:`QueueDepthSummary`, a
logging filter the server installs for as long as it runs: at most one line per
:data:`QUEUE_SUMMARY_S`, with the deepest queue and how many requests queued.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lagscope.errors import ExitCode, LagscopeError
from lagscope.netutil import set_listen_options
from lagscope.serve.app import LoadedApp
from lagscope.serve.balance import RECHECK_S, Balance
from lagscope.serve.database import PrewarmResult
from lagscope.serve.settings import ServeConfig

__all__ = [
    "LISTENING_PREFIX",
    "QUEUE_LOGGER",
    "QUEUE_SUMMARY_S",
    "QueueDepthSummary",
    "WaitressServer",
    "open_listeners",
    "serve_on",
    "start_waitress",
    "url",
]

# Start-up prints one line starting with this once it serves; the rest of the line is the
# space-separated URLs. Subprocess users (tests, bench) wait for it: it is the readiness
# signal, and carries the port when --port 0 was given.
LISTENING_PREFIX = "lagscope serve: listening on "

QUEUE_LOGGER = "waitress.queue"
# waitress.task.ThreadedTaskDispatcher.add_task's message, one argument: the depth.
_WAITRESS_QUEUE_MSG = "Task queue depth is %d"
QUEUE_SUMMARY_S = 5.0


class QueueDepthSummary(logging.Filter):
    """A filter on ``waitress.queue``: at most one line per ``window_s``.

    The first queued request after a quiet ``window_s`` logs at once (queueing started);
    the ones after it within ``window_s`` are only counted, and the next one after the
    window rewrites its record into the summary of them all (deepest queue, how many). What
    is still counted when the server stops comes out in :meth:`flush`. Other messages on
    the logger pass untouched. Thread-safe (waitress logs from whichever thread queues)."""

    def __init__(
        self, window_s: float = QUEUE_SUMMARY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last_line_s: float | None = None
        self._queued = 0
        self._deepest = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "lagscope_summary", False):
            return True
        args = record.args
        if record.msg != _WAITRESS_QUEUE_MSG or not isinstance(args, tuple) or len(args) != 1:
            return True
        depth = args[0]
        if not isinstance(depth, int):
            return True
        with self._lock:
            self._queued += 1
            self._deepest = max(self._deepest, depth)
            now = self.clock()
            if self._last_line_s is not None and now - self._last_line_s < self.window_s:
                return False
            record.msg, record.args = self._take_summary()
            self._last_line_s = now
            return True

    def _take_summary(self) -> tuple[str, tuple[object, ...]]:
        if self._queued == 1:
            msg: tuple[str, tuple[object, ...]] = (
                "Task queue depth is %d: a request waits for a free thread "
                "(further queueing summarised every %g s at most)",
                (self._deepest, self.window_s),
            )
        else:
            msg = (
                "Task queue depth up to %d: %d requests waited for a free thread since "
                "the last such line",
                (self._deepest, self._queued),
            )
        self._queued = self._deepest = 0
        return msg

    def flush(self, logger: logging.Logger) -> None:
        """Log what was counted since the last line, if anything."""
        with self._lock:
            if self._queued == 0:
                return
            msg, args = self._take_summary()
            self._last_line_s = self.clock()
        logger.warning(msg, *args, extra={"lagscope_summary": True})


def url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


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
                    set_listen_options(sock)  # SO_EXCLUSIVEADDRUSE on Windows
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
    """A started (listening, prewarmed) waitress server; :meth:`serve` runs its loop.

    After :meth:`serve` returns, ``in_flight_at_stop``, ``finished`` and ``abandoned``
    say what the graceful stop did: connections that had a request queued, running or
    still being sent when the stop began, how many of them were answered in full, and how
    many were closed without a complete response when ``shutdown_timeout_s`` ran out.
    """

    server: Any
    urls: list[str]
    port: int
    prewarmed: list[PrewarmResult] = field(default_factory=list)
    shutdown_timeout_s: float = 30.0
    # One of several workers: accept only while among the least loaded (see balance.py).
    balance: Balance | None = None
    # The loop's select() timeout while accepting: the drain and Ctrl+C on Windows wait
    # for the loop to wake up.
    idle_wake_s: float = 1.0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _stopped: threading.Event = field(default_factory=threading.Event)
    in_flight_at_stop: int = 0
    finished: int = 0
    abandoned: int = 0
    aborted: bool = False
    # Loop iterations so far (each one a select() and a pass over every connection).
    iterations: int = 0
    _wake: Any = None
    _tracked: set[Any] = field(default_factory=set)
    # Installed on waitress's queue logger while this server runs (see serve_on).
    queue_summary: QueueDepthSummary | None = None
    # Called in the loop thread before each iteration (serve --reload's app process hands
    # idle connections back to the front there: nothing has read them in this iteration).
    before_poll: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        from waitress.server import BaseWSGIServer

        # The trigger that wakes the loop thread. It sits in the map on its own, so it keeps
        # working after the listeners are closed.
        for obj in list(self.socket_map().values()):
            if isinstance(obj, BaseWSGIServer):
                self._wake = obj.trigger
                break

    def socket_map(self) -> dict[int, Any]:
        return self.server._map if hasattr(self.server, "_map") else self.server.map  # type: ignore[no-any-return]

    def serve(self) -> None:
        """Run the loop until :meth:`stop` (from any thread) has drained it.

        A :class:`KeyboardInterrupt` in the loop (a second signal) closes every socket at
        once and is re-raised."""
        from lagscope.serve.accept import loop_hints, poll_once

        socket_map = self.socket_map()
        hints = loop_hints(socket_map)
        try:
            while socket_map:
                if self.before_poll is not None:
                    self.before_poll()
                poll_once(socket_map, hints, self._wake_after_s)
                self.iterations += 1
        except KeyboardInterrupt:
            self.abort()
            raise
        finally:
            # Wait for the worker threads only when none is stuck in an abandoned request.
            self._stop_dispatcher(0.0 if (self.aborted or self.abandoned) else 5.0)
            self._end_queue_summary()
            self._stopped.set()

    def _end_queue_summary(self) -> None:
        if self.queue_summary is not None:
            queue_log = logging.getLogger(QUEUE_LOGGER)
            queue_log.removeFilter(self.queue_summary)
            self.queue_summary.flush(queue_log)
            self.queue_summary = None

    def _wake_after_s(self) -> float:
        """A worker that is not accepting does not watch the listeners: it must look again
        soon, or a new connection could wait for its loop's next wake-up."""
        if self.balance is not None and not self.balance.accepting:
            return RECHECK_S
        return self.idle_wake_s

    def stop(self) -> None:
        """Graceful stop: stop accepting, close idle connections, let in-flight requests
        finish (up to ``shutdown_timeout_s``), then end the loop.

        Thread-safe and idempotent; returns at once (the drain runs in its own thread)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        started = threading.Event()

        def begin() -> None:
            self._begin_stop()
            started.set()

        self.trigger(begin)
        threading.Thread(
            target=self._drain, args=(started,), name="lagscope-drain", daemon=True
        ).start()

    def abort(self) -> None:
        """Close every socket now (called in the loop thread)."""
        from waitress import wasyncore

        self.aborted = True
        self.abandoned = len(self._tracked)
        wasyncore.close_all(self.socket_map())

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait_stopped(self, timeout_s: float) -> bool:
        return self._stopped.wait(timeout_s)

    def trigger(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the loop thread."""
        assert self._wake is not None
        # OSError: the loop ran the thunk (woken by an earlier pull) and it closed the
        # trigger before our own write reached it: nothing left to wake.
        with contextlib.suppress(OSError):
            self._wake.pull_trigger(fn)

    def channels(self) -> list[Any]:
        from waitress.channel import HTTPChannel

        return [obj for obj in list(self.socket_map().values()) if isinstance(obj, HTTPChannel)]

    @staticmethod
    def _busy(channel: Any) -> bool:
        """A request queued or running, or a response not yet fully sent."""
        return bool(channel.requests or channel.total_outbufs_len)

    def _begin_stop(self) -> None:
        """In the loop thread: close the listeners and the idle keep-alive connections
        (so no new request can start), and remember the busy ones."""
        from waitress import wasyncore
        from waitress.server import BaseWSGIServer

        if self.balance is not None:
            self.balance.leave()
        for obj in list(self.socket_map().values()):
            if isinstance(obj, BaseWSGIServer) and obj.accepting:
                obj.accepting = False
                # dispatcher.close, not the server's close: keep its trigger for the drain.
                wasyncore.dispatcher.close(obj)
        for channel in self.channels():
            if self._busy(channel):
                self._tracked.add(channel)
            else:
                # Idle, or a request still arriving: nothing was promised to it yet.
                channel.close()
        self.in_flight_at_stop = len(self._tracked)

    def _close_answered(self) -> None:
        """In the loop thread: close tracked connections whose responses went out."""
        for channel in list(self._tracked):
            if not channel.connected:
                # Closed by the client (or by waitress after a Connection: close reply).
                self._tracked.discard(channel)
                self.finished += 1
            elif not self._busy(channel) and channel.request is None:
                self._tracked.discard(channel)
                self.finished += 1
                channel.close()

    def _poll_drain(self, polled: threading.Event) -> None:
        self._close_answered()
        polled.set()

    def _drain(self, started: threading.Event) -> None:
        from waitress import wasyncore

        deadline = time.monotonic() + self.shutdown_timeout_s
        started.wait(5)
        while True:
            polled = threading.Event()
            self.trigger(functools.partial(self._poll_drain, polled))
            polled.wait(5)
            if not self._tracked or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        done = threading.Event()

        def close_all() -> None:
            self.abandoned = len(self._tracked)
            wasyncore.close_all(self.socket_map())
            done.set()

        self.trigger(close_all)
        if not done.wait(5):
            # The loop is stuck (should not happen): close from here as a last resort.
            self.abandoned = len(self._tracked)
            wasyncore.close_all(self.socket_map())

    def _stop_dispatcher(self, wait_s: float) -> None:
        dispatcher = self.server.task_dispatcher
        if wait_s > 0:
            dispatcher.shutdown(cancel_pending=True, timeout=wait_s)
            return
        # A thread is still inside the app: do not wait for it (its daemon thread ends
        # with the process), just stop the pool and drop what is queued.
        dispatcher.set_thread_count(0)
        with dispatcher.lock:
            while dispatcher.queue:
                dispatcher.queue.popleft().cancel()
            dispatcher.queue_cv.notify_all()


def start_waitress(loaded: LoadedApp, config: ServeConfig) -> WaitressServer:
    """Listen, create the waitress server, and prewarm; the loop is not running yet."""
    try:
        import waitress  # noqa: F401
    except ImportError as exc:
        raise LagscopeError(
            "config", "waitress is not installed (pip install 'lagscope[serve]')", ExitCode.USAGE
        ) from exc
    socks = open_listeners(config.listen_hosts, config.port, config.backlog)
    return serve_on(loaded, config, socks)


def serve_on(
    loaded: LoadedApp,
    config: ServeConfig,
    socks: list[socket.socket],
    balance: Balance | None = None,
    *,
    proxy_headers: bool = True,
) -> WaitressServer:
    """The waitress server on listening ``socks`` (closed on failure), prewarmed.

    ``balance``: this process is one of several workers on the same sockets.
    ``proxy_headers=False``: the app applies the forwarded-header rule itself (see
    :meth:`ServeConfig.waitress_adjustments`)."""
    from lagscope.serve.accept import build_server

    port = int(socks[0].getsockname()[1])
    try:
        server = build_server(
            loaded.app, socks, config.waitress_adjustments(proxy_headers=proxy_headers), balance
        )
    except Exception:
        for s in socks:
            s.close()
        raise
    if not config.tcp_nodelay:
        # Per-server Adjustments instance; waitress reads it for each accepted socket.
        server.adj.socket_options = []
    urls = [url(s.getsockname()[0], port) for s in socks]
    ws = WaitressServer(
        server,
        urls,
        port,
        shutdown_timeout_s=config.shutdown_timeout,
        balance=balance,
        idle_wake_s=float(server.adj.asyncore_loop_timeout),
    )
    if loaded.databases is not None:
        # The prewarm tasks queue up on purpose: waitress's "Task queue depth" warning
        # would be noise here.
        queue_log = logging.getLogger(QUEUE_LOGGER)
        was_disabled, queue_log.disabled = queue_log.disabled, True
        try:
            # Per-thread connections open in waitress's own worker threads, through its
            # task queue (duck-typed tasks, as waitress's own are).
            ws.prewarmed = loaded.databases.prewarm(server.task_dispatcher.add_task)
        except LagscopeError:
            ws.abort()
            ws._stop_dispatcher(5.0)
            raise
        finally:
            queue_log.disabled = was_disabled
        loaded.databases.start_guard()
    ws.queue_summary = QueueDepthSummary()
    logging.getLogger(QUEUE_LOGGER).addFilter(ws.queue_summary)
    return ws

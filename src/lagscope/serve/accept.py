"""The waitress server on listening sockets we opened, optionally balanced across workers.

:func:`build_server` does what ``waitress.create_server(app, sockets=...)`` does (one
``TcpWSGIServer`` per socket on one map and one thread pool), but with
:class:`BalancedListener` as the listening dispatcher when a
:class:`~lagscope.serve.balance.Balance` is given: its ``readable()`` (asked once per loop
iteration) publishes this worker's open-connection count and says no while another worker
holds fewer. Waitress itself is unchanged; this is its documented subclassing point (the
dispatcher's ``readable``), not a patch.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from lagscope.serve.balance import Balance

__all__ = [
    "LOCK_RECHECK_S",
    "BalancedListener",
    "Listener",
    "LoopHints",
    "QuietChannel",
    "build_server",
    "loop_hints",
    "open_connections",
    "poll_once",
]

WSGIApp = Callable[..., Iterable[bytes]]


def loop_hints(socket_map: dict[int, Any]) -> LoopHints:
    """The hints shared by the listeners of a server :func:`build_server` made (a fresh,
    unused one for any other server)."""
    for obj in socket_map.values():
        hints = getattr(obj, "hints", None)
        if isinstance(hints, LoopHints):
            return hints
    return LoopHints()


def poll_once(
    socket_map: dict[int, Any], hints: LoopHints, wake_after_s: Callable[[], float]
) -> None:
    """One loop iteration: waitress's ``wasyncore.poll`` (``select()``), except that the
    timeout is chosen after every dispatcher said whether it is readable and writable, so
    what they said in *this* iteration counts: :data:`LOCK_RECHECK_S` after a skipped
    channel, else ``wake_after_s()`` (which may read what the listeners decided)."""
    hints.recheck_soon = False
    readers: list[int] = []
    writers: list[int] = []
    errors: list[int] = []
    for fd, obj in list(socket_map.items()):
        is_readable = obj.readable()
        is_writable = obj.writable()
        if is_readable:
            readers.append(fd)
        if is_writable and not obj.accepting:  # a listener is never written to
            writers.append(fd)
        if is_readable or is_writable:
            errors.append(fd)
    timeout_s = LOCK_RECHECK_S if hints.recheck_soon else wake_after_s()
    if not (readers or writers or errors):
        time.sleep(timeout_s)  # select() refuses three empty lists on Windows
        return
    try:
        readers, writers, errors = select.select(readers, writers, errors, timeout_s)
    except InterruptedError:
        return
    for fds, handle in (
        (readers, "handle_read_event"),
        (writers, "handle_write_event"),
        (errors, "handle_expt_event"),
    ):
        for fd in fds:
            obj = socket_map.get(fd)
            if obj is not None:
                _dispatch(obj, handle)


def _dispatch(obj: Any, handle: str) -> None:
    """What wasyncore does per event: an error in a handler goes to the dispatcher's own
    ``handle_error`` (which logs and closes it), never out of the loop."""
    try:
        getattr(obj, handle)()
    except (wasyncore.ExitNow, KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        obj.handle_error()


def open_connections(listeners: Iterable[Any]) -> int:
    """Client connections (waitress channels) open on these listeners (waitress keeps
    each listener's in ``active_channels``; the type stubs misname its type)."""
    return sum(len(listener.active_channels) for listener in listeners)


# How soon the loop looks again at a channel it skipped because an app thread held its
# output lock: that thread may have pulled the trigger before releasing the lock, so the
# wake-up came too early and will not come again.
LOCK_RECHECK_S = 0.001


class LoopHints:
    """What the dispatchers of one server tell its loop during an iteration."""

    def __init__(self) -> None:
        # A channel was skipped while an app thread held its output lock.
        self.recheck_soon = False


class QuietChannel(HTTPChannel):
    """A waitress channel that the loop does not spin on while a task thread writes to it.

    Waitress's channel is ``writable()`` whenever output is pending. While the thread
    running the app holds the channel's output lock (it appends and flushes its own
    writes), the loop's ``handle_write`` cannot take that lock and does nothing, yet the
    socket stays writable, so ``select()`` returns at once, again and again: measured 94
    loop iterations per request of the 78 KB demo JSON under ``hey -c 8``, each taking the
    GIL from the thread doing the work. Not writable while another thread holds the lock
    is safe because every writer that releases it with output left pulls the loop's
    trigger (``write_soon``, the high-watermark wait, the end of ``service``); since
    ``write_soon`` pulls it *before* releasing the lock, a skipped channel also asks the loop
    (:class:`LoopHints`) to look again within :data:`LOCK_RECHECK_S`.
    """

    def writable(self) -> bool:
        if not super().writable():
            return False
        if self.will_close or self.close_when_flushed:
            return True
        lock = self.outbuf_lock
        if lock.acquire(blocking=False):  # reentrant: free, or held by this (loop) thread
            lock.release()
            return True
        hints = getattr(self.server, "hints", None)
        if hints is not None:
            hints.recheck_soon = True
        return False

    def close(self) -> None:
        """Close as ``handle_close`` does, output buffers included: waitress's ``close()``
        (what a graceful stop and ``close_all`` call) leaves them open, and a body over
        ``outbuf_overflow`` (1 MB) sits in a temporary file that then leaks."""
        self.handle_close()


class Listener(TcpWSGIServer):
    """Waitress's TCP listener with :class:`QuietChannel` connections."""

    channel_class = QuietChannel
    hints: LoopHints


class BalancedListener(Listener):
    """A listening dispatcher that accepts only while its worker is among the least loaded."""

    balance: Balance
    siblings: list[Any]

    def readable(self) -> bool:
        if not super().readable():  # stopping, or at connection_limit
            return False
        return self.balance.decide(open_connections(self.siblings))


def build_server(
    app: WSGIApp,
    socks: list[Any],
    adjustments: dict[str, Any],
    balance: Balance | None = None,
) -> Any:
    """A waitress ``MultiSocketServer`` on ``socks`` (already listening), started but not
    yet looping (untyped: its stubs lack attributes waitress has, e.g. ``effective_host``)."""
    adj = Adjustments(sockets=socks, **adjustments)
    socket_map: dict[int, Any] = {}
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    listeners: list[Any] = []
    effective: list[tuple[str, int]] = []
    hints = LoopHints()
    for sock in adj.sockets:
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        kind = Listener if balance is None else BalancedListener
        listener: Any = kind(
            app,
            socket_map,
            True,
            sock,
            dispatcher=dispatcher,
            adj=adj,
            bind_socket=False,
            sockinfo=sockinfo,
        )
        listener.hints = hints
        if isinstance(listener, BalancedListener):
            assert balance is not None
            listener.balance = balance
            listener.siblings = listeners
        listeners.append(listener)
        effective.append((str(listener.effective_host), int(listener.effective_port)))
    return MultiSocketServer(socket_map, adj, effective, dispatcher, listeners[-1].log_info)

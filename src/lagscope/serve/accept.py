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

from collections.abc import Callable, Iterable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from lagscope.serve.balance import Balance

__all__ = ["BalancedListener", "Listener", "QuietChannel", "build_server", "open_connections"]

WSGIApp = Callable[..., Iterable[bytes]]


def open_connections(listeners: Iterable[Any]) -> int:
    """Client connections (waitress channels) open on these listeners (waitress keeps
    each listener's in ``active_channels``; the type stubs misname its type)."""
    return sum(len(listener.active_channels) for listener in listeners)


class QuietChannel(HTTPChannel):
    """A waitress channel that the loop does not spin on while a task thread writes to it.

    Waitress's channel is ``writable()`` whenever output is pending. While the thread
    running the app holds the channel's output lock (it appends and flushes its own
    writes), the loop's ``handle_write`` cannot take that lock and does nothing, yet the
    socket stays writable, so ``select()`` returns at once, again and again: measured 94
    loop iterations per request of the 78 KB demo JSON under ``hey -c 8``, each taking the
    GIL from the thread doing the work. Not writable while another thread holds the lock
    is safe because every writer that releases it with output left pulls the loop's
    trigger (``write_soon``, the high-watermark wait, the end of ``service``).
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
        return False


class Listener(TcpWSGIServer):
    """Waitress's TCP listener with :class:`QuietChannel` connections."""

    channel_class = QuietChannel


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
        if isinstance(listener, BalancedListener):
            assert balance is not None
            listener.balance = balance
            listener.siblings = listeners
        listeners.append(listener)
        effective.append((str(listener.effective_host), int(listener.effective_port)))
    return MultiSocketServer(socket_map, adj, effective, dispatcher, listeners[-1].log_info)

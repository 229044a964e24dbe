"""The app process's side of the handoff: client connections the front hands over.

:class:`Handed` adopts each client socket the front sends (:mod:`~lagscope.serve.reload.handoff`)
into the app process's waitress server as a :class:`HandedChannel`, an ordinary waitress
channel that also knows whether its client connection has carried a request before (in
this or an earlier app process), so Server-Timing ``conn`` stays true: its task
(:class:`HandedTask`) sets :data:`~lagscope.instrument.connections.CLIENT_CONNECTION_NEW`.
The peer address is the client's own (it is the client's socket), so ``--trusted-proxy``
is waitress's rule as without ``--reload``.

On ``retire`` (the front switched to a newer app process), before each loop iteration
every idle channel is handed back: no request queued or running, no byte of a next request
read, nothing left to send. A channel idle at that moment cannot have been read in this
iteration, so whatever the client sends next waits in the socket for the new process.
Once none is left, the server stops (a graceful stop with nothing to drain), a second
later (:data:`RETIRED_STOP_DELAY_S`).

:class:`RecentGets` remembers the latest GET of each of the last few targets that answered
200 quickly; :func:`replay` sends them to a new app process's own listener before the
switch (answers dropped), so the developer's first page after an edit does not pay
Django's first-request work (URL resolver, templates, the first query on each thread).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from waitress.task import WSGITask

from lagscope.instrument.connections import CLIENT_CONNECTION_NEW
from lagscope.serve.accept import QuietChannel
from lagscope.serve.reload.handoff import Carrier, Message
from lagscope.serve.server import WaitressServer

__all__ = [
    "RETIRED_STOP_DELAY_S",
    "WARM_MAX_S",
    "WARM_TARGETS",
    "Handed",
    "HandedChannel",
    "HandedTask",
    "RecentGets",
    "replay",
]

# A retired process that holds no connection any more stops this much later, so that its
# exit (pool closed, interpreter torn down) does not take CPU from the first requests the
# new process answers.
RETIRED_STOP_DELAY_S = 1.0
# How many recent GET targets a new app process is warmed with before the switch, and the
# most a GET may have taken to be one of them (a slow view would hold a thread).
WARM_TARGETS = 4
WARM_MAX_S = 0.5

WSGIApp = Callable[..., Iterable[bytes]]


class HandedTask(WSGITask):
    """Waitress's WSGI task, plus whether this is the client connection's first request."""

    def get_environment(self) -> dict[str, Any]:
        cached = self.environ
        if cached is not None:
            return cached
        environ: dict[str, Any] = super().get_environment()
        channel: Any = self.channel
        environ[CLIENT_CONNECTION_NEW] = not channel.reused
        channel.reused = True
        return environ


class HandedChannel(QuietChannel):
    """A client connection the front handed to this process."""

    task_class = HandedTask
    # The client connection has carried a request (here or in an earlier app process).
    reused = False
    # Handed back to the front (not closed: its close is not the client's).
    handed_back = False
    on_closed: Callable[[], None] | None = None

    def idle(self) -> bool:
        """Nothing of a request here: it can move to another process as it is."""
        return bool(
            self.connected
            and not self.requests
            and self.request is None
            and not self.total_outbufs_len
            and not self.will_close
            and not self.close_when_flushed
        )

    def del_channel(self, map: Any = None) -> None:
        was_open = getattr(self, "_fileno", None) is not None
        super().del_channel(map)
        if was_open and not self.handed_back and self.on_closed is not None:
            self.on_closed()


class Handed:
    """The client connections of one app process's waitress server (see the module)."""

    def __init__(self, ws: WaitressServer, carrier: Carrier) -> None:
        self.ws = ws
        self.carrier = carrier
        self.retiring = False
        self.handed_back = 0
        self._empty_since_s: float | None = None
        from lagscope.serve.accept import Listener

        self._listener: Any = next(
            obj for obj in ws.socket_map().values() if isinstance(obj, Listener)
        )

    def __repr__(self) -> str:
        return f"<Handed retiring={self.retiring} handed_back={self.handed_back}>"

    # -- from the front (any thread)
    def on_message(self, message: Message, sock: socket.socket | None) -> None:
        kind = message.get("kind")
        if kind == "conn" and sock is not None:
            reused = bool(message.get("reused"))
            idle_since = float(message.get("idle_since", time.time()))
            self.ws.trigger(lambda: self._adopt(sock, reused, idle_since))
        elif kind == "retire":
            self.ws.trigger(self._retire)
        elif sock is not None:
            sock.close()

    # -- in the loop thread
    def _adopt(self, sock: socket.socket, reused: bool, idle_since: float) -> None:
        if self.ws.stopping:
            sock.close()
            self._closed()
            return
        try:
            sock.setblocking(False)
            addr = sock.getpeername()
            self._listener.set_socket_options(sock)  # TCP_NODELAY, as waitress's accept
        except OSError:  # the client is already gone
            sock.close()
            self._closed()
            return
        channel = HandedChannel(
            self._listener, sock, self._listener.fix_addr(addr), self._listener.adj,
            map=self._listener._map,
        )  # fmt: skip
        channel.reused = reused
        channel.last_activity = min(idle_since, channel.last_activity)
        channel.on_closed = self._closed  # if retiring, handed back before the next poll

    def _retire(self) -> None:
        # Not here: this runs inside waitress's trigger, which stop() pulls again.
        self.retiring = True
        self.ws.before_poll = self._hand_back_idle

    def _hand_back_idle(self) -> None:
        """Before each loop iteration of a retiring process."""
        if self.ws.stopping:
            return
        left = 0
        for channel in self.ws.channels():
            if not isinstance(channel, HandedChannel):
                continue
            if channel.idle():
                self._hand_back(channel)
            else:
                left += 1
        if left:
            self._empty_since_s = None
            return
        now_s = time.monotonic()
        if self._empty_since_s is None:
            self._empty_since_s = now_s
        elif now_s - self._empty_since_s >= RETIRED_STOP_DELAY_S:
            self.ws.stop()  # nothing of a client here any more

    def _hand_back(self, channel: HandedChannel) -> None:
        sock = channel.socket
        channel.handed_back = True
        channel.del_channel()
        for outbuf in channel.outbufs:
            with contextlib.suppress(Exception):
                outbuf.close()
        channel.connected = False
        self.handed_back += 1
        message = {"kind": "conn", "reused": channel.reused, "idle_since": channel.last_activity}
        # OSError: the front is gone; the socket is closed, as at any stop.
        with contextlib.suppress(OSError):
            self.carrier.send(message, sock)

    def _closed(self) -> None:
        with contextlib.suppress(OSError):
            self.carrier.send({"kind": "closed"})


class RecentGets:
    """WSGI middleware: the latest GET of each of the last :data:`WARM_TARGETS` targets
    that answered 200 within :data:`WARM_MAX_S` (thread-safe)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        started_s = time.perf_counter()
        status: list[str] = []

        def remember_status(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.app(environ, remember_status)
        if status and status[0].startswith("200") and time.perf_counter() - started_s < WARM_MAX_S:
            self._remember(environ)
        return result

    def _remember(self, environ: dict[str, Any]) -> None:
        target = environ.get("REQUEST_URI")
        if not isinstance(target, str) or not target.startswith("/"):
            return
        headers = [
            (key[5:].replace("_", "-").lower(), value)
            for key, value in environ.items()
            if key.startswith("HTTP_") and isinstance(value, str)
        ]
        with self._lock:
            self._recent.pop(target, None)
            self._recent[target] = headers
            while len(self._recent) > WARM_TARGETS:
                self._recent.popitem(last=False)

    def recent(self) -> list[list[Any]]:
        """``[target, [[name, value], ...]]`` for each, oldest first (JSON-ready)."""
        with self._lock:
            items = list(self._recent.items())
        return [[target, [list(h) for h in headers]] for target, headers in items]


def replay(port: int, requests: list[Any], timeout_s: float) -> int:
    """GET each of ``requests`` (as :meth:`RecentGets.recent` gives them) from the server on
    127.0.0.1:``port``, one after another on one connection, answers dropped; returns how
    many answered. The whole replay is bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    answered = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        for item in requests:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                break
            target, headers = item
            conn.timeout = left_s
            try:
                conn.putrequest("GET", str(target), skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(str(name), str(value))
                conn.endheaders()
                resp = conn.getresponse()
                resp.read()
            except (OSError, ValueError, http.client.HTTPException):
                conn.close()  # a fresh connection for the next one
                continue
            answered += resp.status == 200
    finally:
        conn.close()
    return answered

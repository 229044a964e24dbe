"""The reload front: owns the listening sockets and every client connection, and forwards
each request to the current app process over a connection opened in advance.

One asyncio loop, protocol callbacks only (no task or future per request: the front's
cost is a few callbacks and h11's parse and serialise on each side). Both sides speak
HTTP through h11 (:class:`ClientConn` as server, :class:`UpstreamConn` as client); nothing
is parsed by hand. Hop-by-hop headers are dropped both ways, so the client's keep-alive is
the front's business: an app process that closes its side (waitress after a 204 or 304, a
reload's drain) never closes the client's connection.

An :class:`UpstreamPool` is one app process: its address and the connections the front
opened to it before it became current (:meth:`UpstreamPool.fill`). :meth:`Front.switch`
makes a filled pool current; requests already running on the old pool finish there, and
its ``on_drained`` callback runs once none is left (the app process is then told to stop).
Before the switch the new pool is warmed (:meth:`UpstreamPool.warm`) with the latest GET of
each of the last few targets clients asked for that answered 200 within
:data:`WARM_MAX_S` (:meth:`Front.remember`), their answers
dropped, so the first request after an edit does not pay Django's first-request work.
Each request carries the client connection's facts (:mod:`lagscope.serve.reload.facts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import h11

from lagscope.serve.reload.facts import CLIENT_HEADER, TOKEN_HEADER, client_header, is_front_header

__all__ = ["ClientConn", "Front", "UpstreamConn", "UpstreamPool"]

# RFC 9110 7.6.1, plus what h11 frames itself (content-length and transfer-encoding are
# kept on requests so the app sees the body framed as sent).
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
_RESPONSE_DROPPED = _HOP_BY_HOP | {b"transfer-encoding"}
# h11's bound on a request or response head.
MAX_HEAD_BYTES = 64 * 1024
# How many recent GET targets a new app process is warmed with before the switch, and
# the most a GET may have taken to be one of them (a slow view would hold a thread).
WARM_TARGETS = 4
WARM_MAX_S = 0.5


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class UpstreamConn(asyncio.Protocol):
    """One connection from the front to an app process (h11 client side)."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.client: ClientConn | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.closed = False
        self.response_started = False
        # A warm-up request's completion (True: answered in full), when no client waits.
        self.waiter: asyncio.Future[bool] | None = None

    def __repr__(self) -> str:
        return f"<UpstreamConn {self.pool.address} client={self.client is not None}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _nodelay(transport)
        if not self.connected.done():
            self.connected.set_result(None)

    def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        client = self.client
        self.h11.receive_data(data)
        self._process()
        if client is not None:
            client.flush()  # one write per batch of events: head and body go out together

    def eof_received(self) -> bool | None:
        client = self.client
        self.h11.receive_data(b"")
        self._process()
        if client is not None:
            client.flush()
        return None

    def _process(self) -> None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                self._fail()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            client = self.client
            if isinstance(event, h11.Response):
                self.response_started = True
                if client is not None:
                    client.upstream_response(event)
            elif isinstance(event, h11.Data):
                if client is not None:
                    client.upstream_data(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.client = None
                self.response_started = False
                if client is not None:
                    client.upstream_done()
                self._wake(True)
                self.pool.release(self)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._fail()
                return
            # InformationalResponse (100 Continue from the app): the front answered it.

    def _wake(self, answered: bool) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(answered)

    def _fail(self) -> None:
        """The app closed or broke this connection."""
        client, self.client = self.client, None
        self._wake(False)
        self.close()
        if client is not None:
            client.upstream_failed(self.response_started)

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_reading("upstream")

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_reading("upstream")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed before connecting"))
        if not self.closed:
            self._fail()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return (
            not self.closed and self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE
        )


class UpstreamPool:
    """An app process as the front sees it: its address and the connections to it."""

    def __init__(self, address: tuple[str, int], name: str, size: int) -> None:
        self.address = address
        self.name = name
        self.size = size
        self.idle: list[UpstreamConn] = []
        self.busy: set[UpstreamConn] = set()
        self.retired = False
        self.on_drained: Callable[[], None] | None = None
        self.opened = 0

    def __repr__(self) -> str:
        return (
            f"<UpstreamPool {self.name} {self.address} idle={len(self.idle)} "
            f"busy={len(self.busy)} retired={self.retired}>"
        )

    async def open_one(self) -> UpstreamConn:
        loop = asyncio.get_running_loop()
        conn = UpstreamConn(self)
        await loop.create_connection(lambda: conn, self.address[0], self.address[1])
        await conn.connected
        self.opened += 1
        return conn

    async def fill(self, timeout_s: float) -> None:
        """Open :attr:`size` connections (each pays its connect tax here, not in a request)."""
        conns = await asyncio.wait_for(
            asyncio.gather(*(self.open_one() for _ in range(self.size))), timeout_s
        )
        self.idle.extend(conns)

    async def warm(self, requests: list[h11.Request], timeout_s: float) -> int:
        """Send each request once, one after another, and drop the answers (what the first
        request after a switch would otherwise pay: Django's first-request work, templates
        compiled, the first query on each connection); returns how many were answered."""
        answered = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for request in requests:
            conn = self.checkout()
            if conn is None:
                break
            conn.waiter = loop.create_future()
            conn.send(request)
            conn.send(h11.EndOfMessage())
            try:
                answered += await asyncio.wait_for(
                    asyncio.shield(conn.waiter), max(0.0, deadline - loop.time())
                )
            except asyncio.TimeoutError:
                conn.close()  # still running in the app: that connection is not reusable
                break
        return answered

    def checkout(self) -> UpstreamConn | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                self.busy.add(conn)
                return conn
        return None

    def spare(self) -> None:
        """Open one more in the background when the idle ones run low (a burst used them)."""
        if self.retired or len(self.idle) >= 1:
            return

        async def top_up() -> None:
            with contextlib.suppress(OSError, ConnectionError):
                conn = await self.open_one()
                if self.retired:
                    conn.close()
                else:
                    self.idle.append(conn)

        asyncio.get_running_loop().create_task(top_up())

    def release(self, conn: UpstreamConn) -> None:
        self.busy.discard(conn)
        if conn.reusable() and not self.retired:
            conn.h11.start_next_cycle()
            self.idle.append(conn)
        else:
            conn.close()
        self._check_drained()

    def forget(self, conn: UpstreamConn) -> None:
        self.busy.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        self._check_drained()

    def retire(self, on_drained: Callable[[], None]) -> None:
        """No new request comes here; close idle connections; call ``on_drained`` once the
        requests still running here have finished."""
        self.retired = True
        self.on_drained = on_drained
        for conn in list(self.idle):
            conn.close()
        self._check_drained()

    def _check_drained(self) -> None:
        if self.retired and not self.busy and self.on_drained is not None:
            callback, self.on_drained = self.on_drained, None
            callback()

    def close_all(self) -> None:
        for conn in [*self.idle, *self.busy]:
            conn.close()


class ClientConn(asyncio.Protocol):
    """One client connection (h11 server side); requests go to the front's current pool."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.requests = 0
        self.upstream: UpstreamConn | None = None
        self.pending: list[Any] = []  # events for an upstream still connecting
        self.busy = False
        self.last_active_s = time.monotonic()
        self._paused: set[str] = set()
        self._sent_100 = False
        self.closing = False
        self._out: list[bytes] = []
        self._warmable: h11.Request | None = None  # this request, if a warm-up may repeat it
        self._started_s = 0.0

    def __repr__(self) -> str:
        return f"<ClientConn {self.peer} requests={self.requests} busy={self.busy}>"

    # -- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _nodelay(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = (str(peer[0]), int(peer[1]))
        self.front.clients.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active_s = time.monotonic()
        self.h11.receive_data(data)
        self._process()
        self.flush()

    def eof_received(self) -> bool | None:
        self.h11.receive_data(b"")
        self._process()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.front.clients.discard(self)
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            # The response has nowhere to go: that upstream connection cannot be reused.
            upstream.client = None
            upstream.close()
        if self.busy:
            self.busy = False
            self.front.request_ended(complete=False)

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def pause_reading(self, why: str) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused.add(why)

    def resume_reading(self, why: str) -> None:
        self._paused.discard(why)
        if not self._paused and self.transport is not None and not self.closing:
            self.transport.resume_reading()

    # -- requests
    def _process(self) -> None:
        while not self.closing:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._bad_request(exc)
                return
            if event is h11.NEED_DATA:
                if self.h11.they_are_waiting_for_100_continue and not self._sent_100:
                    self._sent_100 = True
                    self._write(h11.InformationalResponse(status_code=100, headers=[]))
                return
            if event is h11.PAUSED:
                # A pipelined request waits until this response is out.
                self.pause_reading("h11")
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data | h11.EndOfMessage):
                self._to_upstream(event)
            elif isinstance(event, h11.ConnectionClosed):
                if not self.busy:
                    self.close()
                return

    def _start(self, request: h11.Request) -> None:
        self.requests += 1
        self.busy = True
        self._sent_100 = False
        self.front.request_started()
        headers = [
            (name, value)
            for name, value in request.headers
            if name not in _HOP_BY_HOP and not is_front_header(name)
        ]
        if request.http_version == b"1.0" and not any(n == b"host" for n, _ in headers):
            # An HTTP/1.0 request may leave out Host; the forwarded HTTP/1.1 one may not.
            headers.append((b"host", self.front.host_header))
        headers.append((TOKEN_HEADER, self.front.token))
        headers.append((CLIENT_HEADER, client_header(self.requests == 1, self.peer)))
        # _parsed: the headers came out of h11's parser (and ours are constants): h11
        # skips validating them a second time (a fifth of its cost per request).
        forwarded = h11.Request(
            method=request.method,
            target=request.target,
            headers=headers,
            http_version=b"1.1",
            _parsed=True,
        )
        self._warmable = forwarded if request.method == b"GET" else None
        self._started_s = time.monotonic()
        pool = self.front.current
        assert pool is not None
        upstream = pool.checkout()
        if upstream is not None:
            self.upstream = upstream
            upstream.client = self
            try:
                upstream.send(forwarded)
            except h11.LocalProtocolError:
                # Nothing a client sends should get here (h11 parsed it); if it does, the
                # client gets a 502, not a connection torn down by the loop.
                upstream.client = None
                upstream.close()
                self.upstream_failed(False)
                return
            pool.spare()
            return
        # Every pre-opened connection is busy (more concurrent requests than the pool):
        # open one for this request.
        self.pending = [forwarded]
        self.pause_reading("connecting")
        asyncio.get_running_loop().create_task(self._connect_then_send(pool))

    async def _connect_then_send(self, pool: UpstreamPool) -> None:
        try:
            upstream = await pool.open_one()
        except (OSError, ConnectionError):
            self.pending = []
            self.resume_reading("connecting")
            self.upstream_failed(False)
            return
        if self.closing:
            upstream.close()
            return
        pool.busy.add(upstream)
        self.upstream = upstream
        upstream.client = self
        pending, self.pending = self.pending, []
        for event in pending:
            upstream.send(event)
        self.resume_reading("connecting")

    def _to_upstream(self, event: h11.Data | h11.EndOfMessage) -> None:
        if self.upstream is not None:
            self.upstream.send(event)
        elif self.busy:
            self.pending.append(event)
        elif isinstance(event, h11.EndOfMessage) and self.h11.our_state is h11.DONE:
            # The app answered before the request body ended; now both sides are done.
            self.h11.start_next_cycle()

    # -- from the upstream
    def upstream_response(self, response: h11.Response) -> None:
        if response.status_code != 200:
            self._warmable = None
        headers = [(n, v) for n, v in response.headers if n not in _RESPONSE_DROPPED]
        self._write(
            h11.Response(
                status_code=response.status_code,
                headers=headers,
                reason=response.reason,
                _parsed=True,
            )
        )

    def upstream_data(self, data: bytes) -> None:
        self._write(h11.Data(data=data))

    def upstream_done(self) -> None:
        self.upstream = None
        if self._warmable is not None and time.monotonic() - self._started_s < WARM_MAX_S:
            self.front.remember(self._warmable)
        self._write(h11.EndOfMessage())
        self._finish(complete=True)

    def upstream_failed(self, response_started: bool) -> None:
        """The app process closed the connection before the response was complete."""
        self.upstream = None
        if not self.busy:
            return
        if response_started or self.h11.our_state is not h11.SEND_RESPONSE:
            self.busy = False
            self.front.request_ended(complete=False)
            self.close()
            return
        body = b"lagscope serve --reload: the app process closed the connection\n"
        self._write(
            h11.Response(
                status_code=502,
                headers=[
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            )
        )
        self._write(h11.Data(data=body))
        self._write(h11.EndOfMessage())
        self._finish(complete=False)
        self.flush()

    def _finish(self, complete: bool) -> None:
        self.busy = False
        self.last_active_s = time.monotonic()
        self.front.request_ended(complete=complete)
        if self.closing:
            return
        if self.h11.our_state is h11.MUST_CLOSE or self.front.stopping:
            self.close()
            return
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.resume_reading("h11")
            self._process()
        # else: the request body is still arriving (the app answered early); h11 closes.

    def _write(self, event: Any) -> None:
        """Serialise ``event``; the bytes go out at the next :meth:`flush`."""
        try:
            data = self.h11.send(event)
        except h11.LocalProtocolError:
            self.close()
            return
        if data:
            self._out.append(data)

    def flush(self) -> None:
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(data)

    def _bad_request(self, exc: h11.RemoteProtocolError) -> None:
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self.busy:
            body = f"Bad Request: {exc}\n".encode("ascii", "replace")
            with contextlib.suppress(h11.LocalProtocolError):
                self._write(
                    h11.Response(
                        status_code=exc.error_status_hint,
                        headers=[
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"),
                        ],
                    )
                )
                self._write(h11.Data(data=body))
                self._write(h11.EndOfMessage())
        self.close()

    def close(self) -> None:
        self.flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closing = True


class Front:
    """The listeners, the client connections and the current app process's pool."""

    def __init__(self, token: str, idle_timeout_s: float, sweep_s: float) -> None:
        self.token = token.encode("ascii")
        # The Host an HTTP/1.0 request without one is forwarded with.
        self.host_header = b"localhost"
        self.idle_timeout_s = idle_timeout_s
        self.sweep_s = sweep_s
        self.current: UpstreamPool | None = None
        self.clients: set[ClientConn] = set()
        self.servers: list[asyncio.Server] = []
        self.stopping = False
        self.in_flight = 0
        self.requests = 0
        # Filled in by stop(): what was in flight then, and how it ended.
        self.in_flight_at_stop = 0
        self.finished_after_stop = 0
        self._idle_event: asyncio.Event | None = None
        # The latest GET per target, replayed to a new app process before the switch.
        self.recent: OrderedDict[bytes, h11.Request] = OrderedDict()

    async def listen(self, socks: list[socket.socket]) -> None:
        """Serve on already-listening sockets (accepting starts with :meth:`start`)."""
        loop = asyncio.get_running_loop()
        for sock in socks:
            server = await loop.create_server(
                lambda: ClientConn(self), sock=sock, start_serving=False
            )
            self.servers.append(server)
        loop.call_later(self.sweep_s, self._sweep)

    async def start(self) -> None:
        for server in self.servers:
            await server.start_serving()

    def switch(self, pool: UpstreamPool) -> UpstreamPool | None:
        """Make ``pool`` current; returns the one it replaces (to retire)."""
        old, self.current = self.current, pool
        return old

    def remember(self, request: h11.Request) -> None:
        """Keep the latest GET of each of the last :data:`WARM_TARGETS` targets."""
        self.recent.pop(request.target, None)
        self.recent[request.target] = request
        while len(self.recent) > WARM_TARGETS:
            self.recent.popitem(last=False)

    def request_started(self) -> None:
        self.in_flight += 1
        self.requests += 1

    def request_ended(self, complete: bool) -> None:
        self.in_flight -= 1
        if self.stopping and complete:
            self.finished_after_stop += 1
        if self.in_flight == 0 and self._idle_event is not None:
            self._idle_event.set()

    def _sweep(self) -> None:
        """Close client connections idle longer than the timeout (the browser's own
        timeout is shorter, so it normally closes first)."""
        if self.stopping:
            return
        now = time.monotonic()
        for client in list(self.clients):
            if not client.busy and now - client.last_active_s > self.idle_timeout_s:
                client.close()
        asyncio.get_running_loop().call_later(self.sweep_s, self._sweep)

    async def stop(self, timeout_s: float) -> int:
        """Stop accepting, close idle client connections, wait up to ``timeout_s`` for the
        requests in flight; returns how many were abandoned (their connections closed)."""
        self.stopping = True
        for server in self.servers:
            server.close()
        for client in list(self.clients):
            if not client.busy:
                client.close()
        self.in_flight_at_stop = self.in_flight
        if self.in_flight > 0:
            self._idle_event = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle_event.wait(), timeout_s)
        abandoned = self.in_flight
        for client in list(self.clients):
            client.close()
        return abandoned

"""Small asyncio HTTP servers that misbehave on purpose, each on a loopback port 0.

The server loop runs in a background thread; ``serve(handler)`` yields the bound port once
the listening socket exists (the readiness signal) and stops the loop on exit. Requests are
parsed with h11, never by hand. Each handler gets ``(reader, writer, state)`` where state
counts connections and requests, so a handler can behave differently on a new connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import h11

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "ConnState"], Awaitable[None]]


@dataclass
class ConnState:
    index: int
    requests: int = 0
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))


async def read_request(reader: asyncio.StreamReader, st: ConnState) -> h11.Request | None:
    """Read one full request with h11; None when the client closed the connection."""
    request: h11.Request | None = None
    while True:
        event = st.conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            st.conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            st.requests += 1
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


def finish_cycle(st: ConnState) -> bool:
    """Ready the h11 state for the next request; False when the connection must close."""
    if st.conn.our_state is h11.DONE and st.conn.their_state is h11.DONE:
        st.conn.start_next_cycle()
        return True
    return False


def response_bytes(
    st: ConnState, body: bytes, headers: list[tuple[str, str]] | None = None, status: int = 200
) -> tuple[bytes, bytes]:
    """(head, body+end) for a response, so handlers can write them apart."""
    hdrs = [("Content-Length", str(len(body))), ("Content-Type", "text/plain")]
    hdrs += headers or []
    head = st.conn.send(h11.Response(status_code=status, headers=hdrs)) or b""
    rest = (st.conn.send(h11.Data(data=body)) or b"") + (st.conn.send(h11.EndOfMessage()) or b"")
    return head, rest


async def reply(
    writer: asyncio.StreamWriter, st: ConnState, headers: list[tuple[str, str]] | None = None
) -> None:
    """A small "ok" response in one write."""
    head, rest = response_bytes(st, b"ok", headers=headers)
    writer.write(head + rest)
    await writer.drain()


@contextmanager
def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Iterator[int]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port_box: list[int] = []
    stop: list[asyncio.Event] = []
    counter = [0]
    tasks: set[asyncio.Task[None]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        st = ConnState(index=counter[0])
        counter[0] += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer, st)
        except (ConnectionError, asyncio.IncompleteReadError, h11.RemoteProtocolError):
            pass
        finally:
            tasks.discard(task)
            writer.close()
            with suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=ssl_context)
        port_box.append(server.sockets[0].getsockname()[1])
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("test server did not start")
    try:
        yield port_box[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


# --- handlers ----------------------------------------------------------------------------


def first_response_delay(delay_s: float) -> Handler:
    """Delays the first response on every new connection (the 'security tax' seen as TTFB)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while (req := await read_request(reader, st)) is not None:
            del req
            if st.requests == 1:
                await asyncio.sleep(delay_s)
            await reply(writer, st)
            if not finish_cycle(st):
                return

    return handler


async def nagle_split(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    """Headers and body in two small writes with Nagle on (TCP_NODELAY off), like cpython
    http.server did: on a reused connection the body waits for the client's delayed ACK."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    while (await read_request(reader, st)) is not None:
        head, rest = response_bytes(st, b"x" * 100)
        writer.write(head)
        await writer.drain()
        writer.write(rest)
        await writer.drain()
        if not finish_cycle(st):
            return


async def not_http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    await reader.read(1024)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
    await writer.drain()
    await reader.read(1024)


async def close_mid_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    head, _ = response_bytes(st, b"y" * 1000)
    writer.write(head + b"y" * 10)
    await writer.drain()


async def huge_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    size = 4 * 1024 * 1024
    head = st.conn.send(h11.Response(status_code=200, headers=[("Content-Length", str(size))]))
    writer.write(head or b"")
    chunk = b"z" * 65536
    for _ in range(size // len(chunk)):
        writer.write(chunk)
        await writer.drain()


async def refuses_keepalive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    head, rest = response_bytes(st, b"bye", headers=[("Connection", "close")])
    writer.write(head + rest)
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState) -> None:
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    await reader.read(1)  # until the client gives up and closes


async def close_without_reply(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    await read_request(reader, st)


async def stall_mid_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    """Sends the head and part of the body, then stalls (but keeps the connection open)."""
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    head, _ = response_bytes(st, b"y" * 1000)
    writer.write(head + b"y" * 10)
    await writer.drain()
    await reader.read(1)


async def never_speaks(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    """Accepts TCP and says nothing, so a TLS client waits forever for the ServerHello."""
    await reader.read(65536)
    await reader.read(1)


async def closes_silently(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    """A sized response, then close, without Connection: close (ghost #4 in disguise)."""
    if await read_request(reader, st) is None:
        return  # a connect without a request (a connect-only probe)
    head, rest = response_bytes(st, b"ok")
    writer.write(head + rest)
    await writer.drain()


def drip_body(interval_s: float) -> Handler:
    """Answers with a 1000-byte body sent one byte every ``interval_s``."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        if await read_request(reader, st) is None:
            return
        head, rest = response_bytes(st, b"x" * 1000)
        writer.write(head)
        await writer.drain()
        for i in range(len(rest)):
            writer.write(rest[i : i + 1])
            await writer.drain()
            await asyncio.sleep(interval_s)

    return handler


def drip_head(interval_s: float) -> Handler:
    """Sends its status line and headers one byte every ``interval_s``, without end."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        if await read_request(reader, st) is None:
            return
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(interval_s)

    return handler


def interim_forever(interval_s: float) -> Handler:
    """Sends ``102 Processing`` every ``interval_s`` and never a final response."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        if await read_request(reader, st) is None:
            return
        while True:
            writer.write(b"HTTP/1.1 102 Processing\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(interval_s)

    return handler


def continue_then(delay_s: float) -> Handler:
    """Sends ``100 Continue`` at once, then the final response ``delay_s`` later."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while await read_request(reader, st) is not None:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(delay_s)
            head, rest = response_bytes(st, b"ok")
            writer.write(head + rest)
            await writer.drain()
            if not finish_cycle(st):
                return

    return handler


def answers(
    headers: list[tuple[bytes, bytes]],
    status: bytes = b"200 OK",
    body: bytes = b"ok",
    close_after: int | None = None,
) -> Handler:
    """Keep-alive responses with ``headers`` written as raw bytes (h11 would refuse the bad
    ones a hostile server sends); with ``close_after``, the connection is closed silently
    (no ``Connection: close``) after that many responses on it."""
    head = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while await read_request(reader, st) is not None:
            writer.write(head + body)
            await writer.drain()
            if not finish_cycle_raw(st) or (close_after is not None and st.requests >= close_after):
                return

    return handler


def finish_cycle_raw(st: ConnState) -> bool:
    """Ready h11 for the next request after a response written without it."""
    if st.conn.their_state is h11.DONE:
        st.conn = h11.Connection(h11.SERVER)
        return True
    return False


def closes_after(count: int) -> Handler:
    """Keeps connections alive for ``count`` responses, the last with ``Connection: close``
    (a per-connection request limit, as nginx's keepalive_requests)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while await read_request(reader, st) is not None:
            last = st.requests >= count
            await reply(writer, st, [("Connection", "close")] if last else [])
            if last or not finish_cycle(st):
                return

    return handler


def idle_close(idle_s: float) -> Handler:
    """Keep-alive, but a connection idle for ``idle_s`` after a response is closed without a
    word (gunicorn's 2 s keep-alive, uvicorn's 5 s)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while True:
            try:
                waiting = read_request(reader, st)
                request = await (asyncio.wait_for(waiting, idle_s) if st.requests else waiting)
            except TimeoutError:
                return
            if request is None:
                return
            await reply(writer, st)
            if not finish_cycle(st):
                return

    return handler


def closes_on_errors(page: str = "/") -> Handler:
    """Keep-alive for ``page``; any other path answers 404 with ``Connection: close`` (a
    server or middleware that drops the connection after an error response)."""

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
    ) -> None:
        while (request := await read_request(reader, st)) is not None:
            if request.target.split(b"?")[0] == page.encode():
                await reply(writer, st)
            else:
                head, rest = response_bytes(st, b"no", [("Connection", "close")], status=404)
                writer.write(head + rest)
                await writer.drain()
            if not finish_cycle(st):
                return

    return handler


async def http10_keepalive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: ConnState
) -> None:
    """Answers ``HTTP/1.0`` with ``Connection: keep-alive`` and a Content-Length, and keeps
    the connection for the next request, as browsers and urllib3 expect (written raw: h11
    speaks only HTTP/1.1)."""
    while await read_request(reader, st) is not None:
        body = b"ok"
        writer.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        if not finish_cycle_raw(st):
            return

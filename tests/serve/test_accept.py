"""The waitress server lagscope builds (:mod:`lagscope.serve.accept`), for real on loopback:
the quiet channel delivers every byte on keep-alive, the tail of a chunk while the app is
still running, and the loop does not spin while app threads write."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lagscope.serve.accept import QuietChannel, build_server
from lagscope.serve.server import WaitressServer


@contextmanager
def _serving(
    app: Callable[..., Iterable[bytes]], threads: int
) -> Iterator[tuple[int, WaitressServer]]:
    """``app`` on a real waitress (lagscope's build) in a thread. A 60 s idle wake-up: output
    left behind without a wake-up of the loop would make the client time out."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    ws = WaitressServer(
        build_server(app, [listener], {"threads": threads}), [], port, idle_wake_s=60.0
    )
    loop = threading.Thread(target=ws.serve, daemon=True)
    loop.start()
    try:
        yield port, ws
    finally:
        ws.stop()
        assert ws.wait_stopped(20)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_large_response_arrives_whole_on_keep_alive(threads: int) -> None:
    # The channel that is not writable while the app's thread writes must still deliver
    # every byte (the task thread's own flush, then the loop's after the trigger) and keep
    # the connection for the next request.
    body = b"x" * (3 * 1024 * 1024 + 17)

    def big(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body[i : i + 65536] for i in range(0, len(body), 65536)]

    with _serving(big, threads) as (port, _ws):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            for _ in range(3):
                conn.request("GET", "/")
                resp = conn.getresponse()
                assert resp.read() == body
                assert not resp.will_close
        finally:
            conn.close()


def test_the_tail_of_a_chunk_goes_out_while_the_app_is_still_running() -> None:
    # A chunk larger than the socket buffers, then the app pauses (a stream between
    # events). What the app thread could not send must go out during the pause, not with
    # the next write 5 s later (nor at the loop's 60 s idle wake-up).
    chunk = b"y" * (8 * 1024 * 1024)
    released = threading.Event()

    def stream(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(len(chunk) + 4))])
        yield chunk
        released.wait(5)  # the app's own pause; the test releases it once the chunk is in
        yield b"done"

    with _serving(stream, 1) as (port, _ws):
        client = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            start = time.monotonic()
            received = bytearray()
            while len(received) - (received.find(b"\r\n\r\n") + 4) < len(chunk):
                data = client.recv(1 << 20)
                assert data, "connection closed early"
                received += data
            chunk_s = time.monotonic() - start
            released.set()
            while not received.endswith(b"done"):
                data = client.recv(1 << 16)
                assert data
                received += data
        finally:
            released.set()
            client.close()
    assert chunk_s < 2.5, chunk_s  # the pause is 5 s


def test_the_loop_does_not_spin_while_app_threads_write() -> None:
    # 8 keep-alive clients, 2 app threads, a CPU-bound 78 KB JSON body (the demo's shape).
    # Waitress's own channel kept the loop spinning while a thread wrote: measured ~94
    # iterations per request; each request needs a handful (read, trigger, flush).
    rows = [
        {"id": i, "name": f"item {i}", "price": i * 1.25, "tags": ["a", "b"]} for i in range(500)
    ]

    def api(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.dumps([dict(r, seen=str(time.time())) for r in rows] * 2).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    requests = 8 * 25
    errors: list[BaseException] = []

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(25):
                conn.request("GET", "/")
                resp = conn.getresponse()
                assert resp.status == 200 and len(resp.read()) > 50_000
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    with _serving(api, 2) as (port, ws):
        clients = [threading.Thread(target=client, args=(port,)) for _ in range(8)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
        per_request = ws.iterations / requests
    assert not errors, errors[0]
    assert per_request < 15, per_request


def test_stopping_closes_the_buffers_of_idle_keep_alive_connections() -> None:
    # A body over waitress's outbuf_overflow (1 MB) goes through a temporary file; the
    # connection then idles, and the graceful stop closes it: the file must close too.
    body = b"z" * (3 * 1024 * 1024)

    def big(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    conn = None
    try:
        with _serving(big, 1) as (port, ws):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("GET", "/")
            assert conn.getresponse().read() == body
            channels = [c for c in ws.server.map.values() if isinstance(c, QuietChannel)]
            buffers: list[Any] = [b.buf for c in channels for b in c.outbufs]
            files = [b.file for b in buffers if getattr(b, "file", None) is not None]
            assert files  # the body went through a temporary file
    finally:
        if conn is not None:
            conn.close()
    assert all(f.closed for f in files)

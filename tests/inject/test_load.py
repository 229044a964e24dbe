"""Load and resource limits: 1000 concurrent connections without errors or fd leaks, and
bounded memory while a client reads slowly (backpressure)."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from lagscope.inject import Injector, Latency, Route
from support.inject_servers import EchoServer, scripted_server

N_CONNECTIONS = 1000


@pytest.fixture
def enough_fds() -> Iterator[None]:
    # 1000 client sockets + 2000 in the proxy + 1000 in the echo server live in this one
    # process. Test-side only: the product never touches limits.
    if sys.platform == "win32":
        yield
    else:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
        if soft < 4 * N_CONNECTIONS + 200:
            if want < 4 * N_CONNECTIONS + 200:
                pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low")
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _open_fds() -> int | None:
    path = "/proc/self/fd"
    return len(os.listdir(path)) if os.path.isdir(path) else None


def _wait_until(cond: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.mark.usefixtures("enough_fds")
def test_thousand_concurrent_connections_without_errors_or_fd_leaks(
    echo_server: EchoServer,
) -> None:
    fds_before = _open_fds()
    route = Route(("127.0.0.1", 0), echo_server.address)
    with Injector([route]) as inj:
        fds_running = _open_fds()
        clients: list[socket.socket] = []
        try:
            for _ in range(N_CONNECTIONS):
                clients.append(socket.create_connection(inj.address(0), timeout=20))
            for i, s in enumerate(clients):
                s.sendall(b"%06d" % i)
            for i, s in enumerate(clients):
                got = b""
                while len(got) < 6:
                    chunk = s.recv(6 - len(got))
                    assert chunk, f"connection {i} closed early"
                    got += chunk
                assert got == b"%06d" % i
            assert _wait_until(lambda: inj.counters().active == N_CONNECTIONS)
        finally:
            for s in clients:
                s.close()
        records = inj.wait_records(N_CONNECTIONS, timeout_s=30)
        assert {r.end for r in records} == {"closed"}
        assert sum(r.c2u.bytes for r in records) == 6 * N_CONNECTIONS
        c = inj.counters()
        assert (c.accepted, c.active, c.closed) == (N_CONNECTIONS, 0, N_CONNECTIONS)
        if fds_running is not None:
            # Every proxied socket is closed again while the proxy keeps running.
            assert _wait_until(lambda: (_open_fds() or 0) <= fds_running + 2)
    if fds_before is not None:
        assert _wait_until(lambda: (_open_fds() or 0) <= fds_before + 2)


@pytest.mark.parametrize("per_chunk_latency", [False, True], ids=["inline", "latency"])
def test_slow_reader_gets_backpressure_not_unbounded_memory(per_chunk_latency: bool) -> None:
    total = 48 * 1024 * 1024
    block = memoryview(bytes(1024 * 1024))
    sent = [0]
    done = threading.Event()

    def handler(conn: socket.socket) -> None:
        # sendall blocks once the proxy stops reading: that is the backpressure.
        try:
            while sent[0] < total:
                conn.sendall(block)
                sent[0] += len(block)
        finally:
            done.set()

    faults = [Latency(delay_ms=1)] if per_chunk_latency else []
    with scripted_server(handler) as up:
        route = Route(("127.0.0.1", 0), up.address, faults)
        with Injector([route]) as inj, socket.create_connection(inj.address(0), timeout=20) as s:
            tracemalloc.start()
            try:
                # The client reads nothing until the pipeline is full: the byte counter
                # stops moving.
                last = -1
                for _ in range(200):
                    now = inj.counters().bytes_u2c
                    if now == last and now > 0:
                        break
                    last = now
                    time.sleep(0.05)
                stalled_sent = sent[0]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert not done.is_set() and stalled_sent < total, "nothing pushed back"
            assert peak < 4 * 1024 * 1024, f"proxy held {peak / 2**20:.1f} MiB"
            # Then it reads everything: nothing was lost on the way.
            buf = bytearray(1 << 20)
            received = 0
            while received < total:
                n = s.recv_into(buf)
                assert n, "stream ended early"
                received += n
            assert received == total
            assert done.wait(10)

"""Windows conditions of the pump, reproduced on any OS: timers that wake a tick early,
the coarse-timer warning, and resets that must not send a FIN first."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time

import pytest

from lagscope.inject import (
    ConnectionTax,
    DialDelay,
    Direction,
    Injector,
    Latency,
    Route,
    SlowClose,
)
from lagscope.inject.config import ProxySettings
from lagscope.inject.faults import Bandwidth, FirstChunkDelay
from lagscope.inject.log import ConnectionRecord
from lagscope.inject.proxy import Proxy
from lagscope.inject.pump import COARSE_TIMER_MS, coarse_timer_note, hard_reset, wait_until
from support.inject_servers import EchoServer, recv_all, scripted_server

_TICK_S = 0.016
_LINGER_ZERO = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)


async def _wakes_a_tick_early(delay_s: float) -> None:
    """A sleep like asyncio's on Windows before 3.13: it may return up to 16 ms early."""
    await asyncio.sleep(max(0.0, delay_s - _TICK_S))


# -- the re-sleep rule, on a fake clock ----------------------------------------------------


def test_wait_until_sleeps_again_after_an_early_wake() -> None:
    now = [100.0]
    slept: list[float] = []

    def clock() -> float:
        return now[0]

    async def early(delay_s: float) -> None:
        slept.append(delay_s)
        now[0] += max(0.001, delay_s - _TICK_S)  # wakes a tick early, at least 1 ms later

    asyncio.run(wait_until(100.2, clock, early))
    assert now[0] >= 100.2
    assert len(slept) >= 2 and slept[0] == pytest.approx(0.2)


def test_wait_until_does_not_sleep_for_a_past_release() -> None:
    slept: list[float] = []

    async def record(delay_s: float) -> None:
        slept.append(delay_s)

    asyncio.run(wait_until(5.0, lambda: 6.0, record))
    assert slept == []


# -- faults are never short, with a real proxy and a sleep that wakes early ----------------


def _route(upstream: tuple[str, int], *faults: object) -> Route:
    return Route(listen=("127.0.0.1", 0), upstream=upstream, faults=faults)  # type: ignore[arg-type]


def test_tax_and_dial_delay_are_never_short_with_early_timers(echo_server: EchoServer) -> None:
    faults = [ConnectionTax(delay_ms=200), DialDelay(delay_ms=150)]
    with Injector([_route(echo_server.address, *faults)], sleep=_wakes_a_tick_early) as inj:
        with socket.create_connection(inj.address(0), timeout=10) as s:
            t = time.perf_counter()
            s.sendall(b"ping")
            assert s.recv(10) == b"ping"
            elapsed_ms = (time.perf_counter() - t) * 1000
        (rec,) = inj.wait_records(1)
    assert rec.tax_applied_ms is not None and rec.tax_applied_ms >= 200.0
    assert rec.dial_delay_applied_ms is not None and rec.dial_delay_applied_ms >= 150.0
    assert elapsed_ms >= 200.0


def test_latency_and_slow_close_are_never_short_with_early_timers() -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"z" * 100)

    faults = [Latency(delay_ms=150, direction=Direction.U2C), SlowClose(delay_ms=150)]
    with (
        scripted_server(handler) as up,
        Injector([_route(up.address, *faults)], sleep=_wakes_a_tick_early) as inj,
    ):
        with socket.create_connection(inj.address(0), timeout=10) as s:
            assert recv_all(s) == b"z" * 100
        (rec,) = inj.wait_records(1)
    assert rec.u2c.first_in_ms is not None and rec.u2c.first_out_ms is not None
    assert rec.u2c.first_out_ms - rec.u2c.first_in_ms >= 150.0
    assert rec.u2c.eof_in_ms is not None and rec.u2c.eof_out_ms is not None
    assert rec.u2c.eof_out_ms - rec.u2c.eof_in_ms >= 150.0


# -- the coarse-timer warning --------------------------------------------------------------


def test_coarse_timer_note_only_on_old_windows_for_short_waits() -> None:
    short = [ConnectionTax(delay_ms=5), Latency(delay_ms=100, jitter_ms=3)]
    note = coarse_timer_note(short, "win32", (3, 12))
    assert note is not None and "3, 5 ms" in note and f"{COARSE_TIMER_MS:g} ms" in note
    assert coarse_timer_note(short, "win32", (3, 13)) is None
    assert coarse_timer_note(short, "linux", (3, 10)) is None
    long_or_none = [ConnectionTax(delay_ms=300), Bandwidth(bytes_per_s=1000), FirstChunkDelay(0)]
    assert coarse_timer_note(long_or_none, "win32", (3, 10)) is None


# -- resets ----------------------------------------------------------------------------------


async def _reset_seen_by_peer(take_handle: bool) -> tuple[bytes | str, int]:
    """Accept one connection, reset it with hard_reset, and report what the peer read."""
    done = asyncio.Event()
    fileno_after: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        hard_reset(writer, take_handle=take_handle)
        raw = getattr(writer.transport, "_sock", None)
        fileno_after.append(raw.fileno() if isinstance(raw, socket.socket) else -1)
        done.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()

    def client() -> bytes | str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"hello")
            try:
                return s.recv(10)
            except ConnectionResetError:
                return "reset"

    try:
        seen = await loop.run_in_executor(None, client)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        server.close()
        await server.wait_closed()
    return seen, fileno_after[0]


@pytest.mark.parametrize("take_handle", [False, True])
def test_hard_reset_is_a_reset_not_an_end_of_stream(take_handle: bool) -> None:
    seen, fileno_after = asyncio.run(_reset_seen_by_peer(take_handle))
    assert seen == "reset"  # b"" would mean a FIN reached the peer first
    if take_handle:
        # The transport no longer owns a handle, so Proactor's connection_lost skips its
        # shutdown(SHUT_RDWR) (it checks fileno() != -1), which would send a FIN.
        assert fileno_after == -1


def test_a_shutdown_before_the_linger_close_is_seen_as_end_of_stream() -> None:
    # What Proactor's abort() does: shutdown, then close with SO_LINGER 0. The peer reads a
    # clean end-of-stream first, which is why hard_reset takes the handle on Windows.
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()[:2], timeout=10) as client,
    ):
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        assert client.recv(10) == b""


# -- upstream names: happy eyeballs ----------------------------------------------------------


class _TwoAddressLoop(asyncio.SelectorEventLoop):
    """A loop whose resolver gives ``twoaddr.test`` two addresses, the first one silent:
    the shape of Windows' `localhost` when nothing listens on ::1 (a refused connect there
    takes ~2 s to report)."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        super().__init__()
        self.addresses = addresses

    async def getaddrinfo(  # type: ignore[override]
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]]:
        if host == "twoaddr.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in self.addresses]
        return await super().getaddrinfo(  # type: ignore[return-value]
            host, port, family=family, type=type, proto=proto, flags=flags
        )


def _silent_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback port whose accept queue is full: a new connect gets no answer (Linux drops
    the SYN; elsewhere it may be refused, which happy eyeballs handles too)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(listener.getsockname())
        fillers.append(s)
    return listener, fillers


def test_an_upstream_name_whose_first_address_is_silent_connects_by_the_next() -> None:
    records: list[ConnectionRecord] = []
    listener, fillers = _silent_listener()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        recorded = asyncio.Event()

        def on_record(record: ConnectionRecord) -> None:
            records.append(record)
            recorded.set()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _TwoAddressLoop)
        loop.addresses = [listener.getsockname(), upstream.sockets[0].getsockname()]
        proxy = Proxy(
            [Route(("127.0.0.1", 0), ("twoaddr.test", 1))],
            settings=ProxySettings(connect_timeout_s=5.0),
            on_record=on_record,
        )
        await proxy.start()
        try:
            reader, writer = await asyncio.open_connection(*proxy.addresses[0])
            writer.write(b"ping")
            data = await asyncio.wait_for(reader.read(100), 10)
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(recorded.wait(), 10)
        finally:
            await proxy.aclose()
            upstream.close()
            await upstream.wait_closed()
        return data

    loop = _TwoAddressLoop([])
    try:
        assert loop.run_until_complete(main()) == b"ping"
    finally:
        loop.close()
        for s in (listener, *fillers):
            s.close()
    (rec,) = records
    assert rec.end == "closed"
    # Sequential attempts would wait out the silent address (here: connect_timeout_s).
    assert rec.upstream_connected_ms is not None and rec.upstream_connected_ms < 1000

"""The proxy pump against real sockets on loopback: half-close, resets, faults, selection.

Timing assertions use injected delays of 100+ ms against loopback noise of about 1 ms, with
generous bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject import (
    Bandwidth,
    BlackHole,
    ConnectionTax,
    DialDelay,
    Direction,
    FirstChunkDelay,
    Injector,
    Latency,
    Reset,
    Route,
    Select,
    SlowClose,
)
from lagscope.inject.config import ProxySettings
from lagscope.inject.log import record_from_json
from lagscope.inject.plan import selected_indices
from support.inject_servers import EchoServer, recv_all, scripted_server
from support.net import free_port


def _route(upstream: tuple[str, int], *faults: object, **kw: object) -> Route:
    return Route(listen=("127.0.0.1", 0), upstream=upstream, faults=faults, **kw)  # type: ignore[arg-type]


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    return sock


def _exchange_or_reset(address: tuple[str, int], payload: bytes) -> bool:
    """Send and read back; True if the connection was reset (at connect time the RST can
    beat connect() back to us, so it may surface there too)."""
    try:
        with _connect(address) as s:
            s.sendall(payload)
            return s.recv(100) != payload
    except ConnectionResetError:
        return True


def test_echo_through_the_proxy_and_record(echo_server: EchoServer, tmp_path: object) -> None:
    log = tmp_path / "truth.jsonl"  # type: ignore[operator]
    with Injector([_route(echo_server.address)], log_path=log) as inj:
        assert inj.ready.is_set()
        host, port = inj.address(0)
        assert host == "127.0.0.1" and port != 0
        with _connect((host, port)) as s:
            s.sendall(b"hello")
            assert s.recv(100) == b"hello"
            counters = inj.counters()
            assert counters.accepted == 1 and counters.active == 1
        (rec,) = inj.wait_records(1)
        assert inj.counters().closed == 1 and inj.counters().active == 0
    assert rec.end == "closed" and rec.error is None
    assert rec.c2u.bytes == 5 and rec.u2c.bytes == 5
    assert rec.upstream_connected_ms is not None and rec.c2u.first_in_ms is not None
    assert rec.c2u.eof_in_ms is not None and rec.closed_ms >= rec.c2u.eof_in_ms
    assert rec.faults == () and rec.tax_applied_ms is None
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and record_from_json(lines[0]).id == rec.id


def test_half_close_client_to_upstream() -> None:
    # The upstream reads to EOF, then answers; the answer must still reach the client.
    def handler(conn: socket.socket) -> None:
        data = recv_all(conn)
        conn.sendall(b"got %d" % len(data))

    with scripted_server(handler) as up, Injector([_route(up.address)]) as inj:
        with _connect(inj.address(0)) as s:
            s.sendall(b"x" * 100_000)
            s.shutdown(socket.SHUT_WR)
            assert recv_all(s) == b"got 100000"
        (rec,) = inj.wait_records(1)
    assert rec.end == "closed" and rec.c2u.eof_out_ms is not None


def test_half_close_upstream_to_client() -> None:
    # The upstream sends and half-closes first, then keeps reading what the client sends.
    received: list[bytes] = []

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"banner")
        conn.shutdown(socket.SHUT_WR)
        received.append(recv_all(conn))

    with scripted_server(handler) as up, Injector([_route(up.address)]) as inj:
        with _connect(inj.address(0)) as s:
            assert recv_all(s) == b"banner"  # EOF arrived while our side stays open
            s.sendall(b"still talking")
            s.shutdown(socket.SHUT_WR)
        inj.wait_records(1)
    assert received == [b"still talking"]


def test_reset_at_connect_and_proxy_keeps_serving(echo_server: EchoServer) -> None:
    faults = [Reset(select=Select(first=1))]
    with Injector([_route(echo_server.address, *faults)]) as inj:
        assert _exchange_or_reset(inj.address(0), b"x")
        with _connect(inj.address(0)) as s:
            s.sendall(b"ok")
            assert s.recv(10) == b"ok"
        recs = sorted(inj.wait_records(2), key=lambda r: r.index)
    assert [r.end for r in recs] == ["injected_reset", "closed"]
    assert inj.counters().resets_injected == 1


def test_reset_after_n_bytes_upstream_to_client() -> None:
    def handler(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the proxy resets us, as configured
            conn.sendall(b"y" * 1_000_000)

    fault = Reset(after_bytes=10_000, direction=Direction.U2C)
    with scripted_server(handler) as up, Injector([_route(up.address, fault)]) as inj:
        got = bytearray()
        reset = False
        with _connect(inj.address(0)) as s:
            try:
                while data := s.recv(65536):
                    got += data
            except ConnectionResetError:
                reset = True
        (rec,) = inj.wait_records(1)
    assert reset, "the client saw a FIN, not a reset"
    assert rec.end == "injected_reset"
    assert rec.u2c.bytes == 10_000
    assert len(got) == 10_000


@pytest.mark.parametrize("per_chunk", [False, True], ids=["inline", "latency"])
def test_upstream_refusing_then_resetting_is_survived(
    echo_server: EchoServer, per_chunk: bool
) -> None:
    faults = [Latency(delay_ms=5)] if per_chunk else []

    def rst_handler(conn: socket.socket) -> None:
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with scripted_server(rst_handler) as rst_up:
        routes = [
            _route(("127.0.0.1", free_port()), *faults),
            _route(rst_up.address, *faults),
            _route(echo_server.address, *faults),
        ]
        with Injector(routes) as inj:
            # The client is reset (the RST may even beat connect() back to us), or sees the
            # stream end: either way no echo, and the proxy lives on.
            assert _exchange_or_reset(inj.address(0), b"hello")
            assert _exchange_or_reset(inj.address(1), b"hello")
            with _connect(inj.address(2)) as s:
                s.sendall(b"still up")
                assert s.recv(10) == b"still up"
            recs = {r.route: r for r in inj.wait_records(3)}
    assert recs["r0"].end == "upstream_refused"
    assert "127.0.0.1" in (recs["r0"].error or "")
    assert recs["r1"].end == "upstream_reset"
    assert recs["r2"].end == "closed"
    assert inj.counters(0).upstream_failures == 1


def test_black_hole_never_dials_or_forwards() -> None:
    with (
        scripted_server(lambda conn: None) as up,
        Injector([_route(up.address, BlackHole())]) as inj,
    ):
        with _connect(inj.address(0)) as s:
            s.sendall(b"into the void")
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(10)
        (rec,) = inj.wait_records(1)
    assert up.accepted == 0
    assert rec.end == "black_hole" and rec.c2u.dropped_bytes == 13 and rec.c2u.bytes == 0


def test_dial_delay_is_off_the_accept_path(echo_server: EchoServer) -> None:
    fault = DialDelay(delay_ms=600, select=Select(first=1))
    with Injector([_route(echo_server.address, fault)]) as inj:
        slow = _connect(inj.address(0))
        slow.sendall(b"slow")
        t = time.perf_counter()
        with _connect(inj.address(0)) as fast:
            fast.sendall(b"fast")
            assert fast.recv(10) == b"fast"
        fast_ms = (time.perf_counter() - t) * 1000
        with slow:
            assert slow.recv(10) == b"slow"
        slow_ms = (time.perf_counter() - t) * 1000
        recs = sorted(inj.wait_records(2), key=lambda r: r.index)
    assert fast_ms < 300, "the second client waited for the first one's dial"
    assert slow_ms >= 500
    assert recs[0].dial_delay_applied_ms is not None and recs[0].dial_delay_applied_ms >= 590
    assert recs[1].dial_delay_applied_ms is None


def test_latency_does_not_accumulate() -> None:
    # The upstream sends 5 chunks 40 ms apart; with 200 ms per-chunk latency the last one
    # arrives ~200 ms after it was sent (~360 ms), not after 5 x 200 ms.
    def handler(conn: socket.socket) -> None:
        for _ in range(5):
            conn.sendall(b"z" * 100)
            time.sleep(0.04)

    fault = Latency(delay_ms=200, direction=Direction.U2C)
    with scripted_server(handler) as up, Injector([_route(up.address, fault)]) as inj:
        with _connect(inj.address(0)) as s:
            t = time.perf_counter()
            first = s.recv(1000)
            first_ms = (time.perf_counter() - t) * 1000
            rest = recv_all(s)
            total_ms = (time.perf_counter() - t) * 1000
        (rec,) = inj.wait_records(1)
    assert len(first) + len(rest) == 500
    assert first_ms >= 190
    assert 340 <= total_ms < 600
    # Each chunk read is held about 200 ms; under CPU load the 5 sends can arrive as fewer
    # reads, so only the first hold is certain.
    assert rec.u2c.held_ms >= 190


def test_first_chunk_delay_only_delays_the_first_response(echo_server: EchoServer) -> None:
    fault = FirstChunkDelay(delay_ms=200)
    with Injector([_route(echo_server.address, fault)]) as inj:
        with _connect(inj.address(0)) as s:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                s.sendall(b"ping")
                assert s.recv(10) == b"ping"
                times.append((time.perf_counter() - t) * 1000)
        (rec,) = inj.wait_records(1)
    assert times[0] >= 190 and max(times[1:]) < 100
    assert 190 <= rec.u2c.held_ms < 300 and rec.c2u.held_ms == 0


def test_bandwidth_cap() -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"b" * 200_000)

    fault = Bandwidth(bytes_per_s=400_000, direction=Direction.U2C)
    with scripted_server(handler) as up, Injector([_route(up.address, fault)]) as inj:
        with _connect(inj.address(0)) as s:
            t = time.perf_counter()
            data = recv_all(s)
            elapsed_s = time.perf_counter() - t
        inj.wait_records(1)
    assert len(data) == 200_000
    # 200 kB at 400 kB/s: 0.5 s minus the first chunk (20 kB) that leaves at once.
    assert 0.4 <= elapsed_s < 1.5


def test_slow_close_holds_the_fin() -> None:
    def handler(conn: socket.socket) -> None:
        conn.sendall(b"bye")

    fault = SlowClose(delay_ms=300, direction=Direction.U2C)
    with scripted_server(handler) as up, Injector([_route(up.address, fault)]) as inj:
        with _connect(inj.address(0)) as s:
            assert s.recv(10) == b"bye"
            t = time.perf_counter()
            assert s.recv(10) == b""
            eof_ms = (time.perf_counter() - t) * 1000
        (rec,) = inj.wait_records(1)
    assert eof_ms >= 250
    assert rec.u2c.eof_out_ms is not None and rec.u2c.eof_in_ms is not None
    assert rec.u2c.eof_out_ms - rec.u2c.eof_in_ms >= 290


def test_seeded_selection_is_reproducible_end_to_end(echo_server: EchoServer) -> None:
    select = Select(probability=0.5, seed=7)
    expected = selected_indices(select, 16)
    assert 0 < len(expected) < 16
    for _run in range(2):
        observed = []
        with Injector([_route(echo_server.address, Reset(select=select))]) as inj:
            for i in range(16):
                observed_reset = _exchange_or_reset(inj.address(0), b"?")
                if observed_reset:
                    observed.append(i)
                inj.wait_records(i + 1)  # one at a time, so accept order is our order
            recs = inj.records()
        assert observed == expected
        assert sorted(r.index for r in recs if r.end == "injected_reset") == expected


def test_asyncio_api_on_the_callers_loop(echo_server: EchoServer) -> None:
    async def main() -> tuple[float, list[str]]:
        route = _route(echo_server.address, ConnectionTax(delay_ms=150))
        async with Injector([route]) as inj:
            reader, writer = await asyncio.open_connection(*inj.address(0))
            t = time.perf_counter()
            writer.write(b"hi")
            assert await reader.readexactly(2) == b"hi"
            elapsed = time.perf_counter() - t
            writer.close()
            await writer.wait_closed()
            for _ in range(200):  # bounded wait for the record (the loop is ours)
                if inj.records():
                    break
                await asyncio.sleep(0.01)
            return elapsed, [r.end for r in inj.records()]

    elapsed, ends = asyncio.run(main())
    assert elapsed >= 0.14
    assert ends == ["closed"]


def test_stop_with_open_connections_records_shutdown(echo_server: EchoServer) -> None:
    inj = Injector([_route(echo_server.address)]).start()
    try:
        with _connect(inj.address(0)) as s:
            s.sendall(b"a")
            assert s.recv(1) == b"a"
            inj.stop()
            assert recv_all(s) == b""  # the proxy closed our connection
    finally:
        inj.stop()
    assert [r.end for r in inj.records()] == ["shutdown"]


def test_non_loopback_listen_is_refused_without_the_flag() -> None:
    route = Route(listen=("0.0.0.0", 0), upstream=("127.0.0.1", 1))
    with pytest.raises(LagscopeError) as info, Injector([route]):
        pass
    assert info.value.exit_code == ExitCode.USAGE
    assert "not a loopback address" in info.value.one_line()


def test_port_in_use_is_an_environment_error(echo_server: EchoServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        route = Route(listen=("127.0.0.1", port), upstream=echo_server.address)
        with pytest.raises(LagscopeError) as info, Injector([route]):
            pass
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert f"127.0.0.1:{port}" in info.value.one_line()


def test_upstream_dial_timeout(echo_server: EchoServer) -> None:
    async def never(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    settings = ProxySettings(connect_timeout_s=0.2)
    with Injector([_route(echo_server.address)], settings=settings, dial=never) as inj:
        with _connect(inj.address(0)) as s:
            s.sendall(b"x")
            with pytest.raises(ConnectionResetError):
                s.recv(10)
        (rec,) = inj.wait_records(1)
    assert rec.end == "upstream_timeout"


def test_injector_can_be_started_again(echo_server: EchoServer) -> None:
    inj = Injector([_route(echo_server.address, ConnectionTax(delay_ms=1))])
    for round_ in range(2):
        with inj, _connect(inj.address(0)) as s:
            s.sendall(b"again")
            assert s.recv(10) == b"again"
        assert len(inj.wait_records(round_ + 1)) == round_ + 1
    assert not inj.ready.is_set()


def test_route_names_must_be_unique() -> None:
    routes = [_route(("127.0.0.1", 1), name="db"), _route(("127.0.0.1", 2), name="db")]
    with pytest.raises(LagscopeError, match="route names must be unique: db"):
        Injector(routes)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failing_log_stops_logging_but_not_proxying(echo_server: EchoServer) -> None:
    with Injector([_route(echo_server.address)], log_path="/dev/full") as inj:
        for _ in range(2):
            with _connect(inj.address(0)) as s:
                s.sendall(b"disk full")
                assert s.recv(20) == b"disk full"
        assert len(inj.wait_records(2)) == 2
    assert inj.log_error is not None and "/dev/full" in inj.log_error

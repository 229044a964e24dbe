"""The runner against a scripted network and a fake clock: exact phase attribution.

The scripted stream plays back bytes with scripted delays and advances the fake clock, so
every phase boundary the runner draws can be checked to the nanosecond, without sockets.
Real-server tests (test_probe_real.py) check the same things against the kernel.
"""

from __future__ import annotations

import itertools
import socket
import ssl
from dataclasses import dataclass, field

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.net import SockAddr
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.runner import run_probe

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer-Timing: total;dur=3\r\n\r\nok"


class FakeClock:
    def __init__(self) -> None:
        self.t_ns = 0

    def now_ns(self) -> int:
        return self.t_ns

    def sleep(self, seconds: float) -> None:
        self.t_ns += int(seconds * 1e9)

    def advance_ms(self, ms: float) -> None:
        self.t_ns += int(ms * 1e6)


@dataclass
class Script:
    """How the fake server behaves, in milliseconds."""

    resolve_ms: float = 1.0
    connect_ms: float = 2.0
    refused: tuple[str, ...] = ()
    blackholed: tuple[str, ...] = ()
    first_wait_ms: float = 150.0  # first response on each connection
    wait_ms: float = 5.0
    # Chunks after the first, each (delay_ms, bytes); the first chunk is the head.
    split_body_delay_ms: float | None = None
    reply: bytes = OK
    close_after_each: bool = False
    connections: list[ScriptedStream] = field(default_factory=list)


class ScriptedStream:
    def __init__(self, clock: FakeClock, script: Script) -> None:
        self.clock = clock
        self.script = script
        self.pending: list[tuple[float, bytes]] = []
        self.requests = 0
        self.closed = False
        self.peer_closed = False

    def send_all(self, data: bytes, timeout_s: float) -> None:
        if self.peer_closed:
            raise BrokenPipeError(32, "Broken pipe")
        assert data.startswith(b"GET / HTTP/1.1\r\n")
        self.clock.advance_ms(0.01)
        wait = self.script.first_wait_ms if self.requests == 0 else self.script.wait_ms
        self.requests += 1
        reply = self.script.reply
        if self.script.split_body_delay_ms is not None:
            head, _, body = reply.partition(b"\r\n\r\n")
            self.pending = [(wait, head + b"\r\n\r\n"), (self.script.split_body_delay_ms, body)]
        else:
            self.pending = [(wait, reply)]

    def recv(self, max_bytes: int, timeout_s: float) -> bytes:
        if not self.pending:
            if self.script.close_after_each or self.peer_closed:
                return b""
            raise TimeoutError("timed out")
        delay, data = self.pending.pop(0)
        self.clock.advance_ms(delay)
        if not self.pending and self.script.close_after_each:
            self.peer_closed = True
        return data

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout_s: float
    ) -> ScriptedStream:
        raise AssertionError("no TLS in these scripts")

    def alpn_protocol(self) -> str | None:
        return None

    def close(self) -> None:
        self.closed = True


class ScriptedNetwork:
    def __init__(self, clock: FakeClock, script: Script) -> None:
        self.clock = clock
        self.script = script

    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        self.clock.advance_ms(self.script.resolve_ms)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    def connect(self, family: int, address: SockAddr, timeout_s: float) -> ScriptedStream:
        if address[0] in self.script.blackholed:
            self.clock.advance_ms(timeout_s * 1000)
            raise TimeoutError("timed out")
        self.clock.advance_ms(self.script.connect_ms)
        if address[0] in self.script.refused:
            raise ConnectionRefusedError(111, "Connection refused")
        stream = ScriptedStream(self.clock, self.script)
        self.script.connections.append(stream)
        return stream


def _run(script: Script, **kw: object) -> tuple[object, FakeClock]:
    clock = FakeClock()
    opts = ProbeOptions(target=parse_url("http://svc.test:8080/"), **kw)  # type: ignore[arg-type]
    return run_probe(opts, ScriptedNetwork(clock, script), clock), clock


def test_phases_are_attributed_exactly() -> None:
    script = Script()
    report, _ = _run(script, cold=6, warm=6)
    cold = report.get_series("cold")  # type: ignore[attr-defined]
    warm = report.get_series("warm")  # type: ignore[attr-defined]
    r = cold.requests[0]
    assert (r.resolve_ms, r.connect_ms, r.tls_ms) == (1.0, 2.0, None)
    assert r.send_ms == pytest.approx(0.01)
    assert r.wait_ms == 150.0 and r.receive_ms == 0.0
    assert r.total_ms == pytest.approx(1 + 2 + 0.01 + 150)
    assert not r.reused and r.attempts[0].outcome == "connected"
    w = warm.requests[0]
    assert w.reused and w.connect_ms is None and w.resolve_ms is None
    assert w.wait_ms == 5.0
    # Every cold request ran on its own connection, and all were closed.
    assert len({x.connection for x in cold.requests}) == 6
    assert all(s.closed for s in script.connections)
    assert len(script.connections) == 7  # 6 cold + 1 warm
    total = next(c for c in report.comparisons if c.phase == "total")  # type: ignore[attr-defined]
    assert total.significant and total.diff_ms == pytest.approx(148.0)
    assert "in wait" in report.verdict  # type: ignore[attr-defined]


def test_warm_first_request_is_kept_out_of_warm_stats() -> None:
    report, _ = _run(Script(), cold=1, warm=3)
    first = report.get_series("warm_first")  # type: ignore[attr-defined]
    warm = report.get_series("warm")  # type: ignore[attr-defined]
    assert [r.wait_ms for r in first.requests] == [150.0]
    assert warm.stats("wait").max_ms == 5.0


def test_nagle_like_stall_lands_in_receive() -> None:
    report, _ = _run(Script(first_wait_ms=5.0, split_body_delay_ms=40.0), cold=1, warm=3)
    w = report.get_series("warm").requests[0]  # type: ignore[attr-defined]
    assert (w.wait_ms, w.receive_ms) == (5.0, 40.0)


def test_pinned_addresses_are_tried_in_order_and_timed() -> None:
    clock = FakeClock()
    script = Script(refused=("::1",))
    opts = ProbeOptions(
        target=parse_url("http://localhost:8080/"),
        cold=1,
        warm=0,
        resolve=(("localhost", ("::1", "127.0.0.1")),),
    )
    report = run_probe(opts, ScriptedNetwork(clock, script), clock)
    r = report.get_series("cold").requests[0]  # type: ignore[union-attr]
    assert [(a.address, a.outcome, a.ms) for a in r.attempts] == [
        ("::1", "refused", 2.0),
        ("127.0.0.1", "connected", 2.0),
    ]
    assert r.resolve_ms is None and r.connect_ms == 4.0
    assert report.resolve_source == "pinned"


def test_keepalive_refused_is_reported_and_warm_runs_on_new_connections() -> None:
    reply = OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    script = Script(reply=reply, close_after_each=True)
    report, _ = _run(script, cold=2, warm=3)
    assert not report.keep_alive.supported  # type: ignore[attr-defined]
    assert "Connection: close" in (report.keep_alive.reason or "")  # type: ignore[attr-defined]
    warm = report.get_series("warm")  # type: ignore[attr-defined]
    assert not any(r.reused for r in warm.requests)
    assert all(r.connect_ms == 2.0 for r in warm.requests)
    assert "closed the connection after every response" in report.verdict  # type: ignore[attr-defined]


def test_rate_limit_paces_remote_hosts_with_the_injected_clock() -> None:
    report, _clock = _run(Script(first_wait_ms=1, wait_ms=1), cold=3, warm=3, rate_per_s=2.0)
    starts = [r.start_ms for s in report.series for r in s.requests]  # type: ignore[attr-defined]
    starts.sort()
    assert all(b - a >= 499.9 for a, b in itertools.pairwise(starts))


def test_max_time_truncates_and_says_so() -> None:
    report, _ = _run(Script(), cold=50, warm=50, max_time_s=1.0)
    assert report.truncated  # type: ignore[attr-defined]
    assert any("--max-time" in w for w in report.warnings)  # type: ignore[attr-defined]


def test_all_addresses_refused_is_a_connect_error() -> None:
    with pytest.raises(LagscopeError) as err:
        _run(Script(refused=("127.0.0.1",)), cold=1, warm=0)
    assert err.value.exit_code == ExitCode.CONNECT
    assert err.value.phase == "connect"
    assert "127.0.0.1:8080 refused" in err.value.message


def test_connect_timeout_on_every_address_is_a_timeout() -> None:
    with pytest.raises(LagscopeError) as err:
        _run(Script(blackholed=("127.0.0.1",)), cold=1, warm=0, timeout_s=2.0)
    assert (err.value.phase, err.value.exit_code) == ("connect", ExitCode.TIMEOUT)
    assert "127.0.0.1:8080 timeout" in err.value.message


def _drop_after(script: Script, n_requests: int) -> type[ScriptedNetwork]:
    """A network whose first connection is closed by the server after n requests."""

    class DropOnce(ScriptedNetwork):
        def connect(self, family: int, address: SockAddr, timeout_s: float) -> ScriptedStream:
            stream = super().connect(family, address, timeout_s)
            if len(script.connections) == 1:
                original = stream.recv

                def recv(max_bytes: int, timeout_s: float) -> bytes:
                    data = original(max_bytes, timeout_s)
                    stream.peer_closed = stream.requests >= n_requests
                    return data

                stream.recv = recv  # type: ignore[method-assign]
            return stream

    return DropOnce


def test_idle_timeout_reconnect_is_counted_and_kept_out_of_warm_stats() -> None:
    script = Script()
    clock = FakeClock()
    # 0.5 requests/s: 2 s between requests, so the drop looks like an idle timeout.
    opts = ProbeOptions(target=parse_url("http://svc.test:8080/"), cold=0, warm=3, rate_per_s=0.5)
    report = run_probe(opts, _drop_after(script, 2)(clock, script), clock)
    assert report.keep_alive.reconnects == 1
    assert report.keep_alive.supported
    warm, first = report.get_series("warm"), report.get_series("warm_first")
    assert warm is not None and first is not None
    assert all(r.reused for r in warm.requests) and len(warm.requests) == 2
    assert [r.reused for r in first.requests] == [False, False]


def test_server_closing_silently_after_each_response_is_keepalive_refused() -> None:
    script = Script()
    clock = FakeClock()
    opts = ProbeOptions(target=parse_url("http://svc.test:8080/"), cold=0, warm=3)
    report = run_probe(opts, _drop_after(script, 1)(clock, script), clock)
    assert not report.keep_alive.supported
    assert "without sending Connection: close" in (report.keep_alive.reason or "")
    assert "closed the connection after every response" in report.verdict


def test_too_few_samples_are_never_called_beyond_noise() -> None:
    report, _ = _run(Script(), cold=2, warm=2)
    assert not any(c.significant for c in report.comparisons)  # type: ignore[attr-defined]
    assert "cannot be told from noise" in report.verdict  # type: ignore[attr-defined]


def test_an_address_that_drops_packets_costs_the_attempt_delay_not_the_timeout() -> None:
    clock = FakeClock()
    script = Script(blackholed=("::1",))
    opts = ProbeOptions(
        target=parse_url("http://localhost:8080/"),
        cold=1,
        warm=0,
        timeout_s=2.0,
        resolve=(("localhost", ("::1", "127.0.0.1")),),
    )
    report = run_probe(opts, ScriptedNetwork(clock, script), clock)
    r = report.get_series("cold").requests[0]  # type: ignore[union-attr]
    assert [(a.address, a.outcome, a.ms) for a in r.attempts] == [
        ("::1", "timeout", 250.0),
        ("127.0.0.1", "connected", 2.0),
    ]
    assert r.connect_ms == 252.0

"""The probe against real servers on loopback: waitress and servers that misbehave on purpose.

Timing assertions use large injected delays against small noise and generous bounds; each
is repeated (parametrized), never retried.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.model import ProbeReport
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.runner import run_probe
from support import badservers
from support.net import free_port
from support.wsgi import waitress_server


def _probe(url: str, **kw: object) -> ProbeReport:
    return run_probe(ProbeOptions(target=parse_url(url), **kw))  # type: ignore[arg-type]


def _hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    body = b'{"ok": true}'
    start_response(
        "200 OK",
        [  # type: ignore[operator]
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Server-Timing", 'total;dur=0.001, db;dur=0.0005;desc="2 queries"'),
        ],
    )
    return [body]


def test_waitress_cold_and_warm_series() -> None:
    with waitress_server(_hello) as (host, port):
        report = _probe(f"http://{host}:{port}/api", cold=8, warm=16)
    cold, warm = report.get_series("cold"), report.get_series("warm")
    assert cold is not None and warm is not None
    assert len(cold.requests) == 8 and len(warm.requests) == 16
    assert all(not r.reused and r.connect_ms is not None for r in cold.requests)
    assert all(r.reused and r.connect_ms is None for r in warm.requests)
    # One connection for all warm requests, plus one per cold request.
    assert len({r.connection for r in warm.requests}) == 1
    assert len({r.connection for r in cold.requests}) == 8
    assert report.keep_alive.supported
    assert all(r.status == 200 and r.body_bytes == 12 for s in report.series for r in s.requests)
    names = [m.name for m in warm.server_timing]
    assert names == ["total", "db"]
    assert warm.server_timing[1].desc == "2 queries"
    assert warm.outside_app is not None  # wait − total is reported


@pytest.mark.parametrize("repeat", range(2))
def test_first_response_delay_shows_as_cold_minus_warm_in_wait(repeat: int) -> None:
    with badservers.serve(badservers.first_response_delay(0.2)) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=6, warm=8)
    total = next(c for c in report.comparisons if c.phase == "total")
    wait = next(c for c in report.comparisons if c.phase == "wait")
    assert total.significant and wait.significant
    assert 180 <= total.diff_ms <= 280
    assert 180 <= wait.diff_ms <= 280
    assert "in wait" in report.verdict
    first = report.get_series("warm_first")
    assert first is not None and first.requests[0].wait_ms >= 190


@pytest.mark.parametrize("repeat", range(2))
def test_nagle_stall_appears_on_warm_requests_in_receive(repeat: int) -> None:
    with badservers.serve(badservers.nagle_split) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=3, warm=6)
    warm = report.get_series("warm")
    assert warm is not None
    receive, wait = warm.stats("receive"), warm.stats("wait")
    assert receive is not None and wait is not None
    # Linux's delayed-ACK minimum is 40 ms (200 ms on Windows): far above loopback noise.
    assert receive.p50_ms >= 30
    assert wait.p50_ms < 20


def test_localhost_v6_first_falls_back_to_v4_and_shows_every_attempt() -> None:
    with waitress_server(_hello, host="127.0.0.1") as (_, port):
        report = _probe(
            f"http://localhost:{port}/",
            cold=2,
            warm=2,
            resolve=(("localhost", ("::1", "127.0.0.1")),),
        )
    cold = report.get_series("cold")
    assert cold is not None
    attempts = cold.requests[0].attempts
    assert [a.address for a in attempts] == ["::1", "127.0.0.1"]
    assert attempts[0].outcome != "connected" and attempts[1].outcome == "connected"
    assert report.addresses == ("::1", "127.0.0.1")


def test_ipv4_only_skips_pinned_ipv6() -> None:
    with waitress_server(_hello) as (_, port):
        report = _probe(
            f"http://localhost:{port}/",
            cold=1,
            warm=1,
            family=socket.AF_INET,
            resolve=(("localhost", ("::1", "127.0.0.1")),),
        )
    cold = report.get_series("cold")
    assert cold is not None
    assert [a.address for a in cold.requests[0].attempts] == ["127.0.0.1"]


def test_server_refusing_keepalive_is_reported() -> None:
    with badservers.serve(badservers.refuses_keepalive) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=2, warm=4)
    assert not report.keep_alive.supported
    warm = report.get_series("warm")
    assert warm is not None and not any(r.reused for r in warm.requests)
    assert len({r.connection for r in warm.requests}) == 4
    assert any("refused keep-alive" in w for w in report.warnings)


def test_http10_with_keep_alive_is_reused_as_browsers_reuse_it() -> None:
    with badservers.serve(badservers.http10_keepalive) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=2, warm=4)
    assert report.keep_alive.supported
    warm = report.get_series("warm")
    assert warm is not None and all(r.reused for r in warm.requests)
    assert {r.http_version for r in warm.requests} == {"1.0"}
    assert len({r.connection for r in warm.requests}) == 1


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    with badservers.serve(badservers.first_response_delay(0.0), ssl_context=ctx) as port:
        yield port, cafile


def test_tls_handshake_is_its_own_phase(tls_server: tuple[int, Path]) -> None:
    port, cafile = tls_server
    report = _probe(
        f"https://localhost:{port}/",
        cold=2,
        warm=2,
        cafile=str(cafile),
        resolve=(("localhost", ("127.0.0.1",)),),
    )
    cold = report.get_series("cold")
    assert cold is not None and all(r.tls_ms is not None and r.tls_ms > 0 for r in cold.requests)
    warm = report.get_series("warm")
    assert warm is not None and all(r.tls_ms is None for r in warm.requests)


def test_tls_untrusted_certificate_fails_unless_insecure(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    with pytest.raises(LagscopeError) as err:
        _probe(f"https://127.0.0.1:{port}/", cold=1, warm=0)
    assert (err.value.phase, err.value.exit_code) == ("tls", ExitCode.TLS)
    report = _probe(f"https://127.0.0.1:{port}/", cold=1, warm=0, verify_tls=False)
    assert report.get_series("cold") is not None


@pytest.mark.parametrize(
    ("handler", "kw", "phase", "code", "words"),
    [
        (badservers.not_http, {}, "wait", ExitCode.PROTOCOL, "not HTTP"),
        (badservers.close_mid_body, {}, "receive", ExitCode.PROTOCOL, "after 10 of 1000"),
        (badservers.huge_body, {"max_body_bytes": 100_000}, "receive", ExitCode.PROTOCOL, "cap"),
        (badservers.silent, {"timeout_s": 0.3}, "wait", ExitCode.TIMEOUT, "no response"),
        (badservers.stall_mid_body, {"timeout_s": 0.3}, "receive", ExitCode.TIMEOUT, "stalled"),
        (badservers.close_without_reply, {}, "wait", ExitCode.PROTOCOL, "without replying"),
    ],
)
def test_misbehaving_servers_fail_with_the_phase_named(
    handler: badservers.Handler, kw: dict[str, object], phase: str, code: ExitCode, words: str
) -> None:
    with badservers.serve(handler) as port, pytest.raises(LagscopeError) as err:
        _probe(f"http://127.0.0.1:{port}/", cold=1, warm=1, **kw)
    assert (err.value.phase, err.value.exit_code) == (phase, code)
    assert words in err.value.message
    assert "\n" not in err.value.one_line()


def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(LagscopeError) as err:
        _probe(f"http://127.0.0.1:{port}/", cold=1, warm=0)
    assert (err.value.phase, err.value.exit_code) == ("connect", ExitCode.CONNECT)
    assert "refused" in err.value.message


def test_name_resolution_failure() -> None:
    # An IPv4 literal asked for as IPv6 fails inside getaddrinfo without any DNS traffic.
    with pytest.raises(LagscopeError) as err:
        _probe("http://127.0.0.1:9/", cold=1, warm=0, family=socket.AF_INET6)
    assert (err.value.phase, err.value.exit_code) == ("resolve", ExitCode.RESOLVE)


def test_tls_handshake_timeout_names_the_tls_phase() -> None:
    with badservers.serve(badservers.never_speaks) as port, pytest.raises(LagscopeError) as err:
        _probe(f"https://127.0.0.1:{port}/", cold=1, warm=0, timeout_s=0.3)
    assert (err.value.phase, err.value.exit_code) == ("tls", ExitCode.TIMEOUT)


def test_server_closing_silently_after_each_response_is_reported() -> None:
    with badservers.serve(badservers.closes_silently) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=2, warm=4)
    assert not report.keep_alive.supported
    assert "without sending Connection: close" in (report.keep_alive.reason or "")
    warm = report.get_series("warm")
    assert warm is not None and not any(r.reused for r in warm.requests)


def _timed_failure(handler: badservers.Handler, **kw: object) -> tuple[LagscopeError, float]:
    with badservers.serve(handler) as port:
        t0 = time.perf_counter()
        with pytest.raises(LagscopeError) as err:
            _probe(f"http://127.0.0.1:{port}/", **kw)
        return err.value, time.perf_counter() - t0


def test_timeout_bounds_the_whole_receive_phase_against_a_dripping_body() -> None:
    # One byte every 50 ms never lets a single recv time out; the phase deadline must.
    err, elapsed_s = _timed_failure(badservers.drip_body(0.05), cold=1, warm=0, timeout_s=0.5)
    assert (err.phase, err.exit_code) == ("receive", ExitCode.TIMEOUT)
    assert elapsed_s < 2.0  # the drip alone would take 50 s


def test_timeout_bounds_the_wait_phase_against_a_dripping_head() -> None:
    err, elapsed_s = _timed_failure(badservers.drip_head(0.05), cold=1, warm=0, timeout_s=0.5)
    assert err.exit_code == ExitCode.TIMEOUT
    assert err.phase in ("wait", "receive")
    assert elapsed_s < 2.0  # it never ends on its own


def test_interim_responses_count_as_waiting_and_are_bounded() -> None:
    err, elapsed_s = _timed_failure(badservers.interim_forever(0.1), cold=1, warm=0, timeout_s=0.6)
    assert (err.phase, err.exit_code) == ("wait", ExitCode.TIMEOUT)
    assert "mid-headers" not in err.message
    assert elapsed_s < 2.0


def test_max_time_bounds_the_run_while_a_request_is_in_flight() -> None:
    err, elapsed_s = _timed_failure(badservers.silent, cold=1, warm=0, timeout_s=8, max_time_s=0.5)
    assert err.exit_code == ExitCode.TIMEOUT
    assert "--max-time" in err.message
    assert elapsed_s < 1.5


def test_max_time_mid_run_keeps_the_completed_requests() -> None:
    with badservers.serve(badservers.first_response_delay(0.3)) as port:
        t0 = time.perf_counter()
        report = _probe(f"http://127.0.0.1:{port}/", cold=50, warm=0, timeout_s=30, max_time_s=1.0)
        elapsed_s = time.perf_counter() - t0
    assert report.truncated
    assert elapsed_s < 1.6  # 50 requests of 0.3 s would take 15 s
    cold = report.get_series("cold")
    assert cold is not None and 1 <= len(cold.requests) <= 4


def test_time_after_100_continue_counts_as_wait_not_receive() -> None:
    with badservers.serve(badservers.continue_then(0.2)) as port:
        report = _probe(f"http://127.0.0.1:{port}/", cold=1, warm=2)
    for series in report.series:
        for r in series.requests:
            assert r.wait_ms >= 150, r
            assert r.receive_ms < 50, r

"""Ghost stacks built from fault sources written here, not lagscope's ``inject``: a taxing
forwarder, a slow DNS server, an IPv6 address that drops connects, Django's own
development server. Each class of ghost must be named with its cost (within 15 % or 5 ms)
and nothing else at warning or above; every millisecond is claimed by a finding that
names the phase where it was measured.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterable
from typing import Any

import pytest

from lagscope.diagnose import run
from lagscope.diagnose.model import Figure
from lagscope.diagnose.rules.outside import TRANSFER_PHASE
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.runner import run_probe
from support import badservers
from support.djangodb import database_alias
from support.ghosts import (
    DnsNetwork,
    HostsNetwork,
    SlowConnectNetwork,
    blackholed_ipv6,
    check,
    dns_server,
    runserver,
    tax_proxy,
)
from support.pg import PgCluster, connect_ms
from support.wsgi import hello, waitress_server


def routed(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """``hello`` at /, 404 elsewhere, as any routed app answers."""
    if environ["PATH_INFO"] == "/":
        return hello(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


def _url(address: tuple[str, int], path: str = "/") -> str:
    return f"http://{address[0]}:{address[1]}{path}"


# Linux's delayed-ACK timer as a stalled exchange sees it (40 ms minimum, ~43 measured).
LINUX_DELAYED_ACK_MS = 43.0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


# --- 1. localhost where ::1 drops connects --------------------------------------------------


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_localhost_where_ipv6_drops_connects_falls_back_and_is_named() -> None:
    network = HostsNetwork({"localhost": ["::1", "127.0.0.1"]})
    with waitress_server(hello) as (_, port), blackholed_ipv6(port):
        t0 = time.perf_counter()
        report = run(f"http://localhost:{port}/", network=network, quick=True, timeout_s=2.0)
        took_s = time.perf_counter() - t0
        probe = run_probe(
            ProbeOptions(target=parse_url(f"http://localhost:{port}/"), cold=2, warm=2),
            network,
        )
    # A sequential client waits its whole connect timeout on ::1 (2 s here).
    check(report, {"localhost-fallback": 2000.0})
    finding = report.finding("localhost-fallback")
    assert finding is not None and finding.severity == "critical"
    figures = {f.name: f.value for f in finding.evidence}
    assert figures["chrome_waits_ms"] == 300.0
    assert figures["answering_address"] == "127.0.0.1"
    # Each address its own bounded attempt: ::1 costs the attempt delay, not the timeout.
    happy = figures["happy_eyeballs_connect_ms"]
    assert isinstance(happy, float) and 240 <= happy <= 600
    assert took_s < 10
    cold = probe.get_series("cold")
    assert cold is not None
    for r in cold.requests:
        assert [a.outcome for a in r.attempts] == ["timeout", "connected"]
        assert r.connect_ms is not None and r.connect_ms < 600


# --- 2. a server that closes every connection, behind a per-connection tax -------------------


@pytest.mark.parametrize(
    "where", ["on_accept_s", "first_data_s"], ids=["tax-at-connect", "tax-on-first-bytes"]
)
def test_server_closing_every_connection_behind_a_tax_without_server_timing(where: str) -> None:
    tax_ms = 60.0
    with (
        badservers.serve(badservers.refuses_keepalive) as port,
        tax_proxy(
            ("127.0.0.1", port),
            on_accept_s=tax_ms / 1000 if where == "on_accept_s" else 0.0,
            first_data_s=tax_ms / 1000 if where == "first_data_s" else 0.0,
        ) as proxy,
    ):
        report = run(_url(proxy), quick=True)
    # Keep-alive would save the tax; the tax is paid on every request.
    truth = proxy.truth_ms()
    assert abs(truth - tax_ms) < tax_ms
    check(report, {"keepalive-refused": truth, "connection-setup-tax": truth})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and tax.affects == "every request"


# --- 3. time outside the app on every request ------------------------------------------------


def test_time_outside_the_app_on_every_request_reused_connections_too(django_app: Any) -> None:
    delay_ms = 80.0
    with (
        waitress_server(django_app) as app,
        tax_proxy(app, every_response_s=delay_ms / 1000) as proxy,
    ):
        report = run(_url(proxy, "/plain/"), quick=True)
    assert abs(proxy.truth_ms() - delay_ms) < delay_ms
    check(report, {"outside-app-every-request": proxy.truth_ms()})
    finding = report.finding("outside-app-every-request")
    assert finding is not None and "--direct" in finding.confirm
    names = {f.name for f in finding.evidence}
    assert {"warm_client_total_ms", "warm_server_timing_total_ms"} <= names


def test_time_outside_the_app_without_server_timing_is_told_from_the_pages_work() -> None:
    delay_ms = 80.0
    with waitress_server(routed) as app, tax_proxy(app, every_response_s=delay_ms / 1000) as proxy:
        report = run(_url(proxy), quick=True)
    check(report, {"outside-app-every-request": proxy.truth_ms()})


# --- 4. slow name resolution -------------------------------------------------------------------


def test_a_name_answered_slowly_by_dns_is_slow_name_resolution_not_a_connect_tax() -> None:
    delay_ms = 250.0
    with (
        waitress_server(hello) as (_, port),
        dns_server({"app.test": ["127.0.0.1"]}, delay_ms / 1000) as dns_port,
    ):
        report = run(f"http://app.test:{port}/", network=DnsNetwork(dns_port), quick=True)
    # What the server really waited before answering (a loaded machine's timers run late).
    truth = statistics.median(dns_port.applied_ms)
    assert delay_ms <= truth < 2 * delay_ms
    check(report, {"slow-name-resolution": truth})
    finding = report.finding("slow-name-resolution")
    assert finding is not None and finding.affects == "first request per connection"
    cold = report.budget("cold")
    assert cold is not None
    assert abs(cold.get("name resolution") - truth) <= 0.15 * truth
    assert abs(cold.get("connection setup")) < 20


# --- 5. and 6. Django's development server -------------------------------------------------------


def test_runserver_small_writes_stall_back_to_back(django_app: Any) -> None:
    with runserver(django_app) as app:
        report = run(_url(app, "/plain/"), quick=True)
    check(report, {"small-write-stall": LINUX_DELAYED_ACK_MS})


@pytest.mark.postgres
def test_a_database_connect_on_every_new_connection_is_not_warm_up(
    django_app: Any, pg_settings: dict[str, Any], pg_cluster: PgCluster
) -> None:
    # runserver: a thread per connection, and with persistent connections a database
    # connection per thread, so every new HTTP connection pays a database connect.
    with tax_proxy(("127.0.0.1", pg_cluster.port), on_accept_s=0.05) as db:
        before = connect_ms(pg_cluster, db[1])
        settings = {**pg_settings, "PORT": str(db[1]), "CONN_MAX_AGE": 60}
        with database_alias("perconn", settings), runserver(django_app) as app:
            report = run(_url(app, "/db/perconn/?n=1"), quick=True)
        # This machine's speed drifts: the truth is timed on both sides of the run.
        truth = statistics.median(connect_ms(pg_cluster, db[1]) + before)
    check(report, {"connection-setup-tax": truth, "small-write-stall": LINUX_DELAYED_ACK_MS})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and "app's own time" in tax.detail


# --- 7. a tax that only some new connections pay -----------------------------------------------


def test_a_tax_on_one_new_connection_in_three_is_named_though_the_typical_one_pays_none(
    django_app: Any,
) -> None:
    with (
        waitress_server(django_app) as app,
        tax_proxy(app, accept_delay_s=lambda n: 0.3 if n % 3 == 0 else 0.0) as proxy,
    ):
        report = run(_url(proxy, "/plain/"), quick=True)
    check(report, {"connection-setup-tax": proxy.truth_ms()})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and tax.affects == "first request per connection"
    assert "new connections paid" in tax.detail


def test_connect_held_by_a_filter_is_a_tax_in_the_tcp_connect() -> None:
    network = SlowConnectNetwork(0.2)
    with waitress_server(hello) as app:
        report = run(_url(app), network=network, quick=True)
    check(report, {"connection-setup-tax": statistics.median(network.applied_ms)})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and Figure("phase", "the TCP connect") in tax.evidence


# --- 8. inspection in proportion to the body -----------------------------------------------------


def test_a_body_held_in_proportion_to_its_size_is_outside_the_app_in_the_transfer(
    django_app: Any,
) -> None:
    with (
        waitress_server(django_app) as app,
        tax_proxy(app, response_s_per_mb=0.1) as proxy,
    ):
        report = run(_url(proxy, "/big/?kb=1000"), quick=True)
    check(report, {"outside-app-every-request": proxy.truth_ms()})
    finding = report.finding("outside-app-every-request")
    assert finding is not None and Figure("phase", TRANSFER_PHASE) in finding.evidence
    warm = report.budget("warm")
    assert warm is not None and warm.get("unexplained") <= max(5.0, 0.15 * warm.total_ms)


# --- 9. HTTP/1.0 that keeps the connection -----------------------------------------------------


def test_http10_responses_with_keep_alive_pay_a_tax_per_connection_not_per_request() -> None:
    with (
        badservers.serve(badservers.http10_keepalive) as port,
        tax_proxy(("127.0.0.1", port), on_accept_s=0.06) as proxy,
    ):
        report = run(_url(proxy), quick=True)
    check(report, {"connection-setup-tax": proxy.truth_ms()})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and tax.affects == "first request per connection"

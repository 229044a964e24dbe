"""Ghost stacks with two causes at once, and taxes of other magnitudes: each cause named with
its own cost (within 15 % or 5 ms of what was injected), in the phase where it was measured,
nothing else at warning or above, and the findings adding up to what a request took.

Real parts: waitress, the suite's Django app with lagscope's middleware, real PostgreSQL,
real nginx, ``lagscope inject`` for taxes on new connections and the suite's forwarder
(tests/support/ghosts.py) for a delay on every response.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings

from lagscope.diagnose import run
from lagscope.diagnose.model import DiagnoseReport
from lagscope.inject import ConnectionTax, Injector, Route
from lagscope.nginx.config import Endpoint
from support import badservers
from support.djangodb import database_alias
from support.ghosts import check, tax_proxy
from support.pg import PgCluster, connect_ms
from support.wsgi import hello, waitress_server

WsgiApp = Any
_KEEPALIVE_PIECES = ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";')


class TaxedHop(tuple[str, int]):
    """The taxing proxy's address, and the taxes it really applied (a loaded machine's
    sleeps overshoot: the truth is what the connections waited)."""

    injector: Injector

    def truth_ms(self) -> float:
        applied = [r.tax_applied_ms for r in self.injector.records()]
        return statistics.median(a for a in applied if a is not None)


@contextmanager
def taxed(upstream: tuple[str, int], tax_ms: float) -> Iterator[TaxedHop]:
    with Injector([Route(("127.0.0.1", 0), upstream, [ConnectionTax(tax_ms)])]) as inj:
        host, port = inj.address(0)[:2]
        hop = TaxedHop((str(host), int(port)))
        hop.injector = inj
        yield hop


def _url(address: tuple[str, int], path: str = "/") -> str:
    return f"http://{address[0]}:{address[1]}{path}"


def _phase(report: DiagnoseReport, finding_id: str) -> object:
    finding = report.finding(finding_id)
    assert finding is not None
    return {f.name: f.value for f in finding.evidence}.get("phase")


def _claimed_within(report: DiagnoseReport, budget: str, ids: tuple[str, ...]) -> None:
    """The findings' costs add up to the budget's total, less the parts no finding is about
    (the app's own work without its database connects, the transfer), within 15 % or 5 ms."""
    b = report.budget(budget)
    assert b is not None
    costs = sum((f.cost_ms or 0.0) for f in report.problems if f.id in ids)
    rest = b.get("app") - b.get("app.dbconn") + b.get("transfer")
    assert abs(costs + rest - b.total_ms) <= max(5.0, 0.15 * b.total_ms), (costs, rest, b)
    # And the budgets leave unexplained none of what the findings price.
    for each in report.budgets:
        assert each.get("unexplained") <= max(5.0, 0.15 * each.total_ms), each


# --- two causes at once -----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_client_tax_and_a_database_connect_per_request_are_priced_apart(
    django_app: WsgiApp, pg_settings: dict[str, Any], pg_cluster: PgCluster
) -> None:
    client_tax_ms = 60.0
    with taxed(("127.0.0.1", pg_cluster.port), 60.0) as db:
        before = connect_ms(pg_cluster, db[1], samples=3)
        settings = {**pg_settings, "PORT": str(db[1]), "CONN_MAX_AGE": 0}
        with (
            database_alias("perreq", settings),
            waitress_server(django_app) as app,
            taxed(app, client_tax_ms) as proxy,
        ):
            report = run(_url(proxy, "/db/perreq/?n=2"), quick=True)
            client_truth = proxy.truth_ms()
        connects = before + connect_ms(pg_cluster, db[1], samples=3)
    assert abs(client_truth - client_tax_ms) < client_tax_ms
    check(report, {"connection-setup-tax": client_truth, "db-connect-per-request": None})
    # The connects, timed by this test around the run, bound the app's (a busy machine
    # moves both; Django adds its session set-up to psycopg's connect).
    db_finding = report.finding("db-connect-per-request")
    assert db_finding is not None and db_finding.cost_ms is not None
    assert min(connects) - 5 <= db_finding.cost_ms <= max(connects) + 5, connects
    # The client's tax is outside the app, on a new connection only; the connect is the app's.
    assert _phase(report, "connection-setup-tax") == "before the first byte, outside the app"
    tax = report.finding("connection-setup-tax")
    assert tax is not None and tax.affects == "first request per connection"
    assert db_finding.affects == "every request"
    _claimed_within(report, "cold", ("connection-setup-tax", "db-connect-per-request"))


@pytest.mark.nginx
def test_a_tax_in_front_of_nginx_without_upstream_keepalive_is_two_findings(
    django_app: WsgiApp, start_nginx: Any
) -> None:
    client_tax_ms, upstream_tax_ms = 60.0, 80.0

    def no_keepalive(text: str) -> str:
        for piece in _KEEPALIVE_PIECES:
            text = text.replace(piece, "")
        return text

    with (
        waitress_server(django_app) as app,
        taxed(app, upstream_tax_ms) as upstream,
        start_nginx(Endpoint(*upstream), transform=no_keepalive) as nginx_port,
        taxed(("127.0.0.1", nginx_port), client_tax_ms) as proxy,
    ):
        report = run(_url(proxy, "/plain/"), quick=True)
        client_truth = proxy.truth_ms()
    upstream_truth = upstream.truth_ms()
    assert abs(upstream_truth - upstream_tax_ms) < upstream_tax_ms
    check(report, {"connection-setup-tax": client_truth, "upstream-no-keepalive": None})
    # A new upstream connection costs the tax and nginx's connect through this process's
    # own forwarder, which a busy machine stretches: wider above than below.
    hop = report.finding("upstream-no-keepalive")
    assert hop is not None and hop.cost_ms is not None
    assert upstream_truth - 5 <= hop.cost_ms <= 1.3 * upstream_truth + 5
    assert _phase(report, "connection-setup-tax") == "before the first byte, outside the app"
    _claimed_within(report, "cold", ("connection-setup-tax", "upstream-no-keepalive"))


def test_a_slow_view_behind_a_tax_is_slow_app_and_the_tax(django_app: WsgiApp) -> None:
    tax_ms = 60.0
    with waitress_server(django_app) as app, taxed(app, tax_ms) as proxy:
        report = run(_url(proxy, "/sleep/?s=0.15"), quick=True)
        truth = proxy.truth_ms()
    check(report, {"slow-app": 150.0, "connection-setup-tax": truth})
    assert _phase(report, "connection-setup-tax") == "before the first byte, outside the app"


def test_django_without_common_middleware_closes_every_connection_behind_a_tax() -> None:
    # Without CommonMiddleware a Django response has no Content-Length: waitress sends it
    # chunked and closes the connection, so every request pays the tax.
    tax_ms = 60.0
    middleware = ["lagscope.django.middleware.ServerTimingMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        handler = WSGIHandler()
    with waitress_server(handler) as app, taxed(app, tax_ms) as proxy:
        report = run(_url(proxy, "/plain/"), quick=True)
        truth = proxy.truth_ms()
    check(report, {"keepalive-refused": truth, "connection-setup-tax": truth})
    refused = report.finding("keepalive-refused")
    assert refused is not None
    assert any("CommonMiddleware" in fix for fix in refused.fix)


# --- other magnitudes ---------------------------------------------------------------------------


@pytest.mark.parametrize("tax_ms", [15.6, 35.0], ids=["windows-timer-tick", "near-delayed-ack"])
def test_a_small_tax_is_named_as_a_tax(tax_ms: float) -> None:
    # 15.6 ms is a Windows timer tick; 35 ms sits near Linux's delayed-ACK stall, which
    # must not be what it is called (a stall shows on reused connections, a tax on new ones).
    with waitress_server(hello) as app, taxed(app, tax_ms) as proxy:
        report = run(_url(proxy), quick=True)
        truth = proxy.truth_ms()
    assert abs(truth - tax_ms) < tax_ms
    check(report, {"connection-setup-tax": truth})


def test_a_windows_timer_sized_delay_on_every_response_is_outside_the_app(
    django_app: WsgiApp,
) -> None:
    delay_ms = 15.6
    with (
        waitress_server(django_app) as app,
        tax_proxy(app, every_response_s=delay_ms / 1000) as proxy,
    ):
        report = run(_url(proxy, "/plain/"), quick=True)
    check(report, {"outside-app-every-request": None})
    # The forwarder shares this process: under load its own turn on the CPU lands in the
    # same phase as its delay, so the bound is wider above than below.
    finding = report.finding("outside-app-every-request")
    assert finding is not None and finding.cost_ms is not None
    assert proxy.truth_ms() - 5 <= finding.cost_ms <= proxy.truth_ms() + 10


# --- a server that closes kept-alive connections early -------------------------------------------


@pytest.mark.parametrize(
    "handler",
    [badservers.closes_after(3), badservers.answers([], close_after=3)],
    ids=["connection-close-after-3", "silent-close-after-3"],
)
def test_a_request_limit_behind_a_tax_is_closed_early_not_refused(
    handler: badservers.Handler,
) -> None:
    # Three responses per connection, the last saying Connection: close (a request limit,
    # as nginx's keepalive_requests) or closing without a word: every third request pays
    # the tax again. Keep-alive is not refused: the first two reuse the connection.
    tax_ms = 60.0
    with badservers.serve(handler) as port, taxed(("127.0.0.1", port), tax_ms) as proxy:
        report = run(_url(proxy), quick=True)
        truth = proxy.truth_ms()
    check(report, {"connection-setup-tax": truth, "keepalive-closed-early": truth})
    early = report.finding("keepalive-closed-early")
    assert early is not None and "after 3 request(s)" in early.title
    assert early.affects == "first request per connection"


def test_an_idle_timeout_behind_a_tax_is_closed_early() -> None:
    # A connection idle for 0.3 s is closed without a word (gunicorn's 2 s keep-alive,
    # scaled down to fit a --quick run): the run's idle connection sees it.
    tax_ms = 60.0
    with (
        badservers.serve(badservers.idle_close(0.3)) as port,
        taxed(("127.0.0.1", port), tax_ms) as proxy,
    ):
        report = run(_url(proxy), quick=True)
        truth = proxy.truth_ms()
    check(report, {"connection-setup-tax": truth, "keepalive-closed-early": truth})
    early = report.finding("keepalive-closed-early")
    assert early is not None and "s idle" in early.title
    idle = {f.name: f.value for f in early.evidence}["idle_before_close_s"]
    assert isinstance(idle, float) and 0.25 <= idle < 2.0


def test_gunicorns_two_second_keepalive_is_seen_by_a_default_run() -> None:
    # A default run waits until its idle connection has sat idle 5.5 s (uvicorn's timeout
    # is 5 s), so a 2 s one is seen even when the rungs take less.
    with badservers.serve(badservers.idle_close(2.0)) as port:
        report = run(f"http://127.0.0.1:{port}/")
    check(report, {"keepalive-closed-early": None})
    early = report.finding("keepalive-closed-early")
    assert early is not None
    idle = {f.name: f.value for f in early.evidence}["idle_before_close_s"]
    assert isinstance(idle, float) and 1.9 <= idle < 3.0

"""Real ghost stacks on loopback, one per finding: diagnose must name each one, with its cost
within 15 % (or 5 ms) of the injected truth, and nothing else at warning or above.

The ghosts are built from real parts: waitress, the suite's Django app with lagscope's
middleware, real PostgreSQL, real nginx, and ``lagscope inject`` for the taxes. Truths are
what was injected (a tax, a sleep) or what an independent measurement says (a psycopg
connect timed by the test itself).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from lagscope.diagnose import run
from lagscope.inject import ConnectionTax, Injector, Route
from lagscope.nginx.config import Endpoint
from support import badservers
from support.djangodb import database_alias
from support.ghosts import check
from support.pg import PgCluster, connect_ms
from support.wsgi import hello, waitress_server

TAX_MS = 200.0

WsgiApp = Any


def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    # No Content-Length: waitress chunks it and closes the connection after it.
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"part one, "
    yield b"part two"


def sleepy(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    time.sleep(0.1)
    return hello(environ, start_response)


@contextmanager
def taxed(upstream: tuple[str, int], tax_ms: float = TAX_MS) -> Iterator[tuple[str, int]]:
    with Injector([Route(("127.0.0.1", 0), upstream, [ConnectionTax(tax_ms)])]) as inj:
        host, port = inj.address(0)[:2]
        yield str(host), int(port)


def _url(address: tuple[str, int], path: str = "/") -> str:
    return f"http://{address[0]}:{address[1]}{path}"


# --- plain WSGI stacks ------------------------------------------------------------------------


def test_connection_tax_in_front_of_the_server() -> None:
    with waitress_server(hello) as app, taxed(app) as proxy:
        report = run(_url(proxy), quick=True)
    check(report, {"connection-setup-tax": TAX_MS})
    tax = report.finding("connection-setup-tax")
    assert tax is not None and tax.affects == "first request per connection"
    # The budget agrees with the finding: a cold request's setup is the tax.
    cold = report.budget("cold")
    assert cold is not None
    assert abs(cold.get("connection setup") - TAX_MS) <= 0.15 * TAX_MS


def test_localhost_resolving_to_an_address_where_nothing_listens() -> None:
    with waitress_server(hello) as (_, port):
        report = run(f"http://localhost:{port}/", resolve=["localhost:[::1],127.0.0.1"], quick=True)
    check(report, {"localhost-fallback": 0.0})
    finding = report.finding("localhost-fallback")
    assert finding is not None
    assert any("::1" in f.name for f in finding.evidence)


def test_a_server_without_content_length_refuses_keepalive() -> None:
    with waitress_server(streaming) as app:
        report = run(_url(app), quick=True)
    check(report, {"keepalive-refused": None})
    finding = report.finding("keepalive-refused")
    assert finding is not None and finding.cost_ms is not None and finding.cost_ms < 5


def test_small_writes_without_nodelay_stall_on_reused_connections() -> None:
    with badservers.serve(badservers.nagle_split) as port:
        report = run(f"http://127.0.0.1:{port}/", quick=True)
    check(report, {"small-write-stall": 40.0})


def test_one_worker_thread_with_a_slow_view_queues_concurrent_requests() -> None:
    with waitress_server(sleepy, threads=1) as app:
        report = run(_url(app), quick=True)
    # A request that arrives while the only worker is busy waits one service time.
    check(report, {"server-queueing": 100.0, "slow-app": 100.0})


def test_healthy_plain_server_yields_no_warning_ten_times() -> None:
    with waitress_server(hello) as app:
        reports = [run(_url(app), quick=True) for _ in range(10)]
    for report in reports:
        check(report, {})


# --- Django stacks --------------------------------------------------------------------------


def test_django_healthy_view_yields_no_warning(django_app: WsgiApp) -> None:
    with waitress_server(django_app) as app:
        reports = [run(_url(app, "/plain/"), quick=True) for _ in range(3)]
    for report in reports:
        check(report, {})


def test_django_slow_view_is_slow_app_never_a_tax(django_app: WsgiApp) -> None:
    with waitress_server(django_app) as app:
        report = run(_url(app, "/sleep/?s=0.2"), quick=True)
    check(report, {"slow-app": 200.0})


def test_django_view_repeating_one_query_is_many_queries(django_app: WsgiApp) -> None:
    with waitress_server(django_app) as app:
        report = run(_url(app, "/repeated/?n=60"), quick=True)
    check(report, {"many-queries": None})
    finding = report.finding("many-queries")
    assert finding is not None
    repeats = {f.name: f.value for f in finding.evidence}["max_repeats_of_one_shape"]
    assert repeats == 60


@pytest.mark.postgres
def test_django_conn_max_age_0_connects_per_request(
    django_app: WsgiApp, pg_settings: dict[str, Any], pg_cluster: PgCluster
) -> None:
    settings = {**pg_settings, "CONN_MAX_AGE": 0}
    with database_alias("perreq", settings), waitress_server(django_app) as app:
        before = connect_ms(pg_cluster)
        report = run(_url(app, "/db/perreq/?n=2"), quick=True)
        after = connect_ms(pg_cluster)
    check(report, {"db-connect-per-request": None})
    # No injected truth here: the connect's own time, measured around the run, bounds it
    # (Django adds its session set-up to psycopg's connect).
    finding = report.finding("db-connect-per-request")
    assert finding is not None and finding.cost_ms is not None
    assert min(before + after) - 5 <= finding.cost_ms <= max(before + after) + 5


@pytest.mark.postgres
def test_django_conn_max_age_0_with_a_taxed_database(
    django_app: WsgiApp, pg_settings: dict[str, Any], pg_cluster: PgCluster
) -> None:
    with taxed(("127.0.0.1", pg_cluster.port)) as db:
        truth = statistics.median(connect_ms(pg_cluster, db[1], samples=3))
        settings = {**pg_settings, "PORT": str(db[1]), "CONN_MAX_AGE": 0}
        with database_alias("taxdb", settings), waitress_server(django_app) as app:
            report = run(_url(app, "/db/taxdb/?n=2"), quick=True)
    check(report, {"db-connect-per-request": truth})
    slow = report.finding("db-connect-slow")
    assert slow is not None and slow.severity == "info"  # its cost is counted once


@pytest.mark.postgres
def test_django_persistent_connections_without_prewarm_warm_up_per_worker(
    django_app: WsgiApp, pg_settings: dict[str, Any], pg_cluster: PgCluster
) -> None:
    with taxed(("127.0.0.1", pg_cluster.port)) as db:
        truth = statistics.median(connect_ms(pg_cluster, db[1], samples=3))
        settings = {**pg_settings, "PORT": str(db[1]), "CONN_MAX_AGE": None}
        with database_alias("persist", settings), waitress_server(django_app, threads=4) as app:
            report = run(_url(app, "/db/persist/?n=2"), quick=True)
            _close_per_thread(_url(app, "/close/persist/"))
    check(report, {"worker-warmup": truth})
    finding = report.finding("worker-warmup")
    assert finding is not None
    workers = {f.name: f.value for f in finding.evidence}["workers"]
    assert workers == 4


def _close_per_thread(url: str) -> None:
    """Persistent connections live in the server's threads: close them there (waitress
    hands sequential requests to its threads in turn)."""
    import urllib.request

    for _ in range(8):
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()


# --- a proxy without upstream keep-alive ------------------------------------------------------

_KEEPALIVE_PIECES = ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";')


def _without_keepalive(text: str) -> str:
    for piece in _KEEPALIVE_PIECES:
        text = text.replace(piece, "")
    return text


@pytest.mark.nginx
def test_nginx_without_upstream_keepalive_in_front_of_a_taxed_app(
    django_app: WsgiApp, start_nginx: Any
) -> None:
    with waitress_server(django_app) as app, taxed(app) as proxy:
        upstream = Endpoint(proxy[0], proxy[1])
        with start_nginx(upstream, transform=_without_keepalive) as nginx_port:
            report = run(f"http://127.0.0.1:{nginx_port}/plain/", quick=True)
    check(report, {"upstream-no-keepalive": TAX_MS})


# --- bad input and hostile peers --------------------------------------------------------------


def test_a_server_that_dies_mid_run_is_one_clear_error() -> None:
    from lagscope.errors import LagscopeError

    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        # Answers the first two requests on any connection, then closes the listener.
        answered = 0
        listener.settimeout(5)
        try:
            while not stop.is_set() and answered < 2:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                    answered += 1
        except OSError:
            pass
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(LagscopeError) as err:
        run(f"http://127.0.0.1:{port}/", quick=True, timeout_s=2)
    stop.set()
    thread.join(10)
    assert err.value.exit_code in (4, 5, 7)
    assert "\n" not in err.value.one_line()


@pytest.mark.postgres
def test_connect_per_request_seen_by_postgresql_itself_without_server_timing(
    pg_cluster: PgCluster,
) -> None:
    dsn = f"postgresql://{pg_cluster.user}@127.0.0.1:{pg_cluster.port}/postgres?gssencmode=disable"

    def connects(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1").fetchone()
        return hello(environ, start_response)

    with waitress_server(connects) as app:
        report = run(_url(app), quick=True, database=dsn)
    check(report, {"db-connect-per-request": None})
    finding = report.finding("db-connect-per-request")
    assert finding is not None
    sessions = {f.name: f.value for f in finding.evidence}["sessions_per_request"]
    assert isinstance(sessions, float) and 0.8 <= sessions <= 1.3


@pytest.mark.nginx
def test_nginx_without_upstream_keepalive_seen_through_direct_without_server_timing(
    start_nginx: Any,
) -> None:
    with waitress_server(hello) as app, taxed(app) as proxy:
        upstream = Endpoint(proxy[0], proxy[1])
        with start_nginx(upstream, transform=_without_keepalive) as nginx_port:
            report = run(f"http://127.0.0.1:{nginx_port}/", quick=True, direct=_url(proxy))
    check(report, {"upstream-no-keepalive": TAX_MS})


@pytest.mark.nginx
def test_nginx_with_lagscopes_config_is_healthy_through_direct(start_nginx: Any) -> None:
    with waitress_server(hello) as app, start_nginx(Endpoint(app[0], app[1])) as nginx_port:
        report = run(f"http://127.0.0.1:{nginx_port}/", quick=True, direct=_url(app))
    check(report, {})

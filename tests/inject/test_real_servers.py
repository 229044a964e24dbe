"""The connection tax against real servers: waitress over HTTP and PostgreSQL via psycopg.

A 200 ms tax must appear once per new connection and never on a reused one, and the
ground-truth log's measured tax must agree with what the client saw. Noise on loopback is
about 1 ms, so bounds are wide.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from lagscope.inject import ConnectionTax, Injector, Route
from support.pg import PgCluster
from support.wsgi import waitress_server

TAX_MS = 200.0


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b'{"ok": true}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "12")])
    return [body]


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def test_tax_once_per_http_connection_through_waitress() -> None:
    with waitress_server(_app) as upstream:
        route = Route(("127.0.0.1", 0), upstream, [ConnectionTax(delay_ms=TAX_MS)])
        with Injector([route]) as inj:
            host, port = inj.address(0)
            per_conn: list[list[float]] = []
            for _ in range(2):
                conn = http.client.HTTPConnection(host, port, timeout=10)
                times = []
                try:
                    for _ in range(4):
                        t0 = time.perf_counter()
                        conn.request("GET", "/")
                        resp = conn.getresponse()
                        assert resp.read() == b'{"ok": true}'
                        times.append(_ms(t0))
                finally:
                    conn.close()
                per_conn.append(times)
            records = sorted(inj.wait_records(2), key=lambda r: r.index)

    assert len(records) == 2, "keep-alive broke: more connections than clients"
    for times, rec in zip(per_conn, records, strict=True):
        first, reused = times[0], times[1:]
        assert first >= TAX_MS - 5, times
        assert max(reused) < 100, f"a reused connection paid the tax: {times}"
        assert rec.end == "closed" and rec.faults == ("ConnectionTax",)
        assert rec.tax_applied_ms is not None
        assert TAX_MS - 5 <= rec.tax_applied_ms < TAX_MS + 60
        # The log's measured delay explains what the client saw, give or take the real work.
        assert 0 <= first - rec.tax_applied_ms < 50, (first, rec.tax_applied_ms)
        # Taxed once per connection: only the first request chunk was held.
        assert rec.c2u.held_ms + rec.u2c.held_ms == pytest.approx(rec.tax_applied_ms, abs=5)


@pytest.mark.postgres
def test_tax_once_per_postgres_connection(pg_cluster: PgCluster) -> None:
    psycopg = pytest.importorskip("psycopg")
    route = Route(("127.0.0.1", 0), ("127.0.0.1", pg_cluster.port), [ConnectionTax(TAX_MS)])
    with Injector([route]) as inj:
        host, port = inj.address(0)
        connect_ms: list[float] = []
        query_ms: list[float] = []
        for _ in range(2):
            t0 = time.perf_counter()
            conn = psycopg.connect(
                host=host,
                port=port,
                user=pg_cluster.user,
                dbname="postgres",
                sslmode="disable",
                gssencmode="disable",
                connect_timeout=10,
            )
            try:
                connect_ms.append(_ms(t0))
                for _ in range(5):
                    t0 = time.perf_counter()
                    assert conn.execute("SELECT 1").fetchone() == (1,)
                    query_ms.append(_ms(t0))
            finally:
                conn.close()
        records = sorted(inj.wait_records(2), key=lambda r: r.index)

    assert len(records) == 2
    assert max(query_ms) < 100, f"a query on a reused connection paid the tax: {query_ms}"
    for seen_ms, rec in zip(connect_ms, records, strict=True):
        assert seen_ms >= TAX_MS - 5
        assert rec.tax_applied_ms is not None
        assert TAX_MS - 5 <= rec.tax_applied_ms < TAX_MS + 60
        assert 0 <= seen_ms - rec.tax_applied_ms < 80, (seen_ms, rec.tax_applied_ms)
        assert rec.c2u.bytes > 0 and rec.u2c.bytes > 0


@pytest.mark.postgres
def test_seed_scenario_two_hops_app_and_database(pg_cluster: PgCluster) -> None:
    # The slow stack in miniature: a tax on the app hop and on the database hop, and an
    # app that opens a new database connection per request (CONN_MAX_AGE=0). A new client
    # connection pays both taxes; a reused one still pays the database hop every time.
    psycopg = pytest.importorskip("psycopg")
    tax_ms = 150.0
    db_route = Route(("127.0.0.1", 0), ("127.0.0.1", pg_cluster.port), [ConnectionTax(tax_ms)])
    with Injector([db_route]) as db_proxy:
        db_host, db_port = db_proxy.address(0)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            with psycopg.connect(
                host=db_host,
                port=db_port,
                user=pg_cluster.user,
                dbname="postgres",
                sslmode="disable",
                gssencmode="disable",
                connect_timeout=10,
            ) as conn:
                (value,) = conn.execute("SELECT 1").fetchone()
            body = str(value).encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]

        with waitress_server(app) as upstream:
            app_route = Route(("127.0.0.1", 0), upstream, [ConnectionTax(tax_ms)])
            with Injector([app_route]) as app_proxy:
                conn = http.client.HTTPConnection(*app_proxy.address(0), timeout=10)
                times = []
                try:
                    for _ in range(3):
                        t0 = time.perf_counter()
                        conn.request("GET", "/")
                        assert conn.getresponse().read() == b"1"
                        times.append(_ms(t0))
                finally:
                    conn.close()
                app_records = app_proxy.wait_records(1)
        db_records = db_proxy.wait_records(3)

    assert times[0] >= 2 * tax_ms - 5, times
    assert all(tax_ms - 5 <= t < 2 * tax_ms - 5 for t in times[1:]), times
    assert len(app_records) == 1 and len(db_records) == 3
    assert all(r.tax_applied_ms is not None and r.tax_applied_ms >= tax_ms - 5 for r in db_records)

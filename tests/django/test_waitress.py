"""The Django middleware behind a real waitress server, on SQLite and real PostgreSQL:
client connection identity, database connect time, queue time, disclosure."""

from __future__ import annotations

import http.client
import time
from typing import Any

import pytest

from lagscope.instrument.servertiming import Metric, parse
from support.net import get

pytestmark = pytest.mark.usefixtures("unblocked_db")


def metrics(response: http.client.HTTPResponse) -> dict[str, Metric]:
    header = response.getheader("Server-Timing")
    assert header is not None, "no Server-Timing header"
    return {m.name: m for m in parse(header)}


def test_new_client_connection_is_flagged_and_reused_is_not(django_server: Any) -> None:
    with django_server(threads=2) as (host, port):
        first = http.client.HTTPConnection(host, port, timeout=10)
        second = http.client.HTTPConnection(host, port, timeout=10)
        try:
            seen = [metrics(get(first, "/plain/"))["conn"].desc for _ in range(3)]
            seen.append(metrics(get(second, "/plain/"))["conn"].desc)
            seen.append(metrics(get(first, "/plain/"))["conn"].desc)
            seen.append(metrics(get(second, "/plain/"))["conn"].desc)
        finally:
            first.close()
            second.close()
        assert seen == ["new", "reused", "reused", "new", "reused", "reused"]
        # A fresh connection after the old one closed is new again.
        third = http.client.HTTPConnection(host, port, timeout=10)
        try:
            assert metrics(get(third, "/plain/"))["conn"].desc == "new"
        finally:
            third.close()


def test_every_request_pays_a_connect_with_conn_max_age_0(
    django_server: Any, make_alias: Any, engine_settings: dict[str, Any]
) -> None:
    with (
        make_alias("instr", {**engine_settings, "CONN_MAX_AGE": 0}),
        django_server(threads=1) as (host, port),
    ):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            for _ in range(3):
                m = metrics(get(conn, "/db/instr/?n=2"))
                assert m["dbconn"].desc == "1 connect"
                assert m["db"].desc == "2 queries"
                assert m["dbconn"].dur_ms is not None and m["total"].dur_ms is not None
                assert 0 < m["dbconn"].dur_ms <= m["total"].dur_ms
                if engine_settings["ENGINE"].endswith("postgresql"):
                    # A PostgreSQL connect forks a backend: never under half a millisecond
                    # (4.5-5.5 ms measured with trust auth on this machine).
                    assert m["dbconn"].dur_ms > 0.5
        finally:
            conn.close()


def test_connect_absent_when_the_connection_is_reused(
    django_server: Any, make_alias: Any, engine_settings: dict[str, Any]
) -> None:
    persistent = {**engine_settings, "CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": True}
    with make_alias("instr", persistent), django_server(threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            runs = [metrics(get(conn, "/db/instr/?n=1")) for _ in range(4)]
            # The server thread's persistent connection must not outlive the server.
            assert get(conn, "/close/instr/").status == 200
        finally:
            conn.close()
    assert runs[0]["dbconn"].desc == "1 connect"
    for later in runs[1:]:
        assert "dbconn" not in later
        assert later["db"].desc == "1 query"


def test_queue_time_from_x_request_start(django_server: Any) -> None:
    with django_server(threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            # The proxy "started" the request 250 ms ago (nginx: t=${msec}).
            started = f"t={time.time() - 0.25:.3f}"
            m = metrics(get(conn, "/plain/", {"X-Request-Start": started}))
            plain = metrics(get(conn, "/plain/"))
        finally:
            conn.close()
    assert m["queue"].dur_ms is not None
    assert 240 <= m["queue"].dur_ms <= 1250
    assert "queue" not in plain


def test_header_absent_for_untrusted_client(django_server: Any) -> None:
    with django_server(threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            # Loopback peer, but the proxy says the real client is elsewhere. (waitress
            # drops X-Forwarded-For from peers that are not its trusted_proxy, so a local
            # nginx must send X-Real-IP, as `lagscope nginx-config` does.)
            untrusted = get(conn, "/plain/", {"X-Real-IP": "203.0.113.9"})
            trusted = get(conn, "/plain/")
        finally:
            conn.close()
    assert untrusted.status == 200
    assert untrusted.getheader("Server-Timing") is None
    assert trusted.getheader("Server-Timing") is not None


def test_thread_names_the_waitress_worker(django_server: Any) -> None:
    with django_server(threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            m = metrics(get(conn, "/sleep/?s=0.2"))
        finally:
            conn.close()
    assert m["thread"].desc is not None and m["thread"].desc.startswith("waitress")
    # A 200 ms view: total and view both carry it.
    assert m["total"].dur_ms is not None and m["view"].dur_ms is not None
    assert 195 <= m["view"].dur_ms <= m["total"].dur_ms <= 2000


@pytest.mark.postgres
def test_connect_time_carries_a_tax_on_new_database_connections(
    django_server: Any, make_alias: Any, pg_database: dict[str, Any]
) -> None:
    # 200 ms held on each new PostgreSQL connection (the antivirus signature), against a
    # ~5 ms connect: dbconn must carry it on every request with CONN_MAX_AGE=0, and db
    # (queries on the established connection) must not.
    from lagscope.inject import ConnectionTax, Injector, Route

    route = Route(("127.0.0.1", 0), ("127.0.0.1", int(pg_database["PORT"])), [ConnectionTax(200)])
    with Injector([route]) as injector:
        host, port = injector.address(0)
        taxed = {**pg_database, "HOST": host, "PORT": str(port), "CONN_MAX_AGE": 0}
        with make_alias("taxed", taxed), django_server(threads=1) as (app_host, app_port):
            conn = http.client.HTTPConnection(app_host, app_port, timeout=30)
            try:
                runs = [metrics(get(conn, "/db/taxed/?n=2")) for _ in range(2)]
            finally:
                conn.close()
    for m in runs:
        assert m["dbconn"].dur_ms is not None and m["db"].dur_ms is not None
        assert m["total"].dur_ms is not None
        assert 195 <= m["dbconn"].dur_ms <= m["total"].dur_ms
        assert m["db"].dur_ms < 100


def test_a_client_connection_tax_shows_outside_total(django_server: Any) -> None:
    # 200 ms held on each new client connection in front of the app: the client waits, the
    # app's `total` stays small, and `conn` says which request paid. This is the split the
    # probe makes (time to first byte minus `total`).
    from lagscope.inject import ConnectionTax, Injector, Route

    with (
        django_server(threads=1) as upstream,
        Injector([Route(("127.0.0.1", 0), upstream, [ConnectionTax(200)])]) as injector,
    ):
        conn = http.client.HTTPConnection(*injector.address(0), timeout=30)
        try:
            seen = []
            for _ in range(2):
                start = time.perf_counter()
                m = metrics(get(conn, "/plain/"))
                seen.append(((time.perf_counter() - start) * 1e3, m))
        finally:
            conn.close()
    (first_ms, first), (second_ms, second) = seen
    assert first["conn"].desc == "new" and second["conn"].desc == "reused"
    assert first["total"].dur_ms is not None and first["total"].dur_ms < 100
    assert first_ms - first["total"].dur_ms >= 195
    assert second_ms < 150


def test_native_pool_checkouts_are_not_connects(
    django_server: Any, make_alias: Any, pg_database: dict[str, Any]
) -> None:
    # Django 5.1+ pool (psycopg_pool): connection_created fires on every checkout, but the
    # pool's workers opened the connections. Reported as dbpool, never dbconn.
    pooled = {
        **pg_database,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {**pg_database["OPTIONS"], "pool": {"min_size": 1, "max_size": 2}},
    }
    from django.db import connections

    with make_alias("pooled", pooled), django_server(threads=1) as (host, port):
        try:
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                runs = [metrics(get(conn, "/db/pooled/?n=1")) for _ in range(3)]
            finally:
                conn.close()
        finally:
            connections["pooled"].close_pool()  # type: ignore[attr-defined]  # Django 5.1+
    for m in runs:
        assert "dbconn" not in m
        assert m["dbpool"].desc == "1 checkout"
        assert m["db"].desc == "1 query"

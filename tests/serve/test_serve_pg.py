"""``lagscope serve --demo`` on real PostgreSQL: no request pays a connect, keep-alive load,
and a PostgreSQL restart while serving."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lagscope.serve import ServeProcess
from serve.clients import KeepAliveClient, hammer
from support.pg import PgCluster

pytestmark = pytest.mark.postgres


def _serve(pg: PgCluster, dbname: str, *extra: str) -> ServeProcess:
    pg.psql(f"DROP DATABASE IF EXISTS {dbname}")
    pg.psql(f"CREATE DATABASE {dbname}")
    env = dict(os.environ)
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    args = ["--demo", "--database", pg.dsn_for(dbname), "--port", "0", "--host", "127.0.0.1"]
    return ServeProcess([*args, *extra], env=env)


def _backends(pg: PgCluster, dbname: str) -> set[str]:
    """Server processes connected to ``dbname`` (psql itself connects to ``postgres``)."""
    out = pg.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{dbname}'")
    return set(out.split())


@pytest.fixture(scope="module")
def served(pg_cluster: PgCluster) -> Iterator[ServeProcess]:
    with _serve(pg_cluster, "serve_demo") as proc:
        yield proc


def test_prewarmed_pool_means_no_request_pays_a_connect(
    served: ServeProcess, pg_cluster: PgCluster
) -> None:
    assert "connections default: pool" in served.output
    assert "prewarmed default: native pool, 2 connections in" in served.output
    before = _backends(pg_cluster, "serve_demo")
    assert len(before) == 2  # min_size connections were open before the first request
    clients = [KeepAliveClient("127.0.0.1", served.port) for _ in range(4)]
    try:
        for i in range(40):
            r = clients[i % 4].get("/api/items/" if i % 2 else "/items/")
            assert r.status == 200
    finally:
        for c in clients:
            c.close()
    # The count of requests after start-up that paid a database connect: zero new
    # PostgreSQL backends, the same two server processes did all the work.
    assert _backends(pg_cluster, "serve_demo") == before


def test_keep_alive_load_on_postgresql(served: ServeProcess, pg_cluster: PgCluster) -> None:
    before = _backends(pg_cluster, "serve_demo")
    pool = hammer("127.0.0.1", served.port, clients=8, duration_s=3.0)
    results = [r for c in pool for r in c.results]
    assert len(results) > 20
    assert {r.status for r in results} == {200}
    assert all(r.content_length is not None for r in results)
    assert all(c.connects == 1 for c in pool)  # no server-side close under load
    assert _backends(pg_cluster, "serve_demo") == before


@pytest.mark.parametrize("mode", ["pool", "persistent"])
def test_postgresql_restart_while_serving(
    pg_cluster: PgCluster, record_property: Callable[[str, object], None], mode: str
) -> None:
    extra = ["--no-db-pool"] if mode == "persistent" else []
    proc = _serve(pg_cluster, "serve_restart", *extra).start()
    assert f"connections default: {mode}" in proc.output
    try:
        stop = threading.Event()
        warm = threading.Event()
        clients = [KeepAliveClient("127.0.0.1", proc.port, timeout_s=20) for _ in range(2)]

        def run(client: KeepAliveClient) -> None:
            deadline = time.monotonic() + 60
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    client.get("/api/items/")
                    if len(client.results) >= 5:
                        warm.set()
            finally:
                client.close()

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        assert warm.wait(30)
        if mode == "persistent":
            # Prewarmed in every thread: no request so far opened a connection (the
            # lagscope middleware's dbconn metric appears only on requests that connect).
            assert not any("dbconn" in r.metrics for c in clients for r in c.results[:5])
        down_s = time.monotonic()
        pg_cluster.restart()  # fast shutdown: PostgreSQL drops every connection
        back_s = time.monotonic()
        # Keep the clients going until each has sent 20 requests after PostgreSQL is back.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and any(
            sum(r.started_s >= back_s for r in c.results) < 20 for c in clients
        ):
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        proc.stop()
    results = sorted((r for c in clients for r in c.results), key=lambda r: r.started_s)
    during = [r for r in results if r.started_s < back_s and r.ended_s > down_s]
    after = [r for r in results if r.started_s >= back_s]
    failed_during = [r for r in during if r.status != 200]
    summary = (
        f"{mode}: restart took {back_s - down_s:.2f} s; "
        f"{len(during)} requests in flight during it, "
        f"{len(failed_during)} failed ({sorted({r.status for r in failed_during})}); "
        f"{len(after)} after it, {sum(r.status != 200 for r in after)} failed"
    )
    print(summary)
    record_property("restart", summary)
    assert len(after) >= 40
    assert [r for r in after if r.status != 200] == []


@pytest.mark.parametrize("mode", ["pool", "persistent"])
def test_requests_succeed_within_1_s_of_postgresql_coming_back_after_a_long_outage(
    pg_cluster: PgCluster, record_property: Callable[[str, object], None], mode: str
) -> None:
    extra = ["--no-db-pool"] if mode == "persistent" else []
    proc = _serve(pg_cluster, "serve_outage", *extra).start()
    assert f"connections default: {mode}" in proc.output
    stop = threading.Event()
    warm = threading.Event()
    clients = [KeepAliveClient("127.0.0.1", proc.port, timeout_s=30) for _ in range(2)]

    def run(client: KeepAliveClient) -> None:
        deadline = time.monotonic() + 90
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if client.get("/api/items/").status != 200:
                    stop.wait(0.05)  # pace failing requests while the database is down
                if len(client.results) >= 5:
                    warm.set()
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        assert warm.wait(30)
        pg_cluster.stop()
        down_s = time.monotonic()
        # The outage: over 15 s, and off psycopg_pool's default retry schedule (connect
        # attempts 1, 3, 7, 15, 31 s after the loss, ±10 %), which an untuned pool would
        # catch only at 31 s.
        stop.wait(17)
        pg_cluster.start()  # returns once PostgreSQL accepts connections again
        back_s = time.monotonic()
        deadline = back_s + 40
        while time.monotonic() < deadline and any(
            sum(r.started_s >= back_s for r in c.results) < 10 for c in clients
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        proc.stop()
    results = sorted((r for c in clients for r in c.results), key=lambda r: r.started_s)
    first_ok = min(r.ended_s for r in results if r.status == 200 and r.ended_s >= back_s)
    after = [r for r in results if r.started_s >= back_s]
    summary = (
        f"{mode}: down {back_s - down_s:.1f} s; first success {first_ok - back_s:.2f} s after "
        f"PostgreSQL accepted again; {len(after)} requests after, "
        f"{sum(r.status != 200 for r in after)} failed, slowest "
        f"{max(r.ended_s - r.started_s for r in after):.2f} s"
    )
    print(summary)
    record_property("outage", summary)
    assert first_ok - back_s < 1.0, summary
    assert len(after) >= 20
    assert [r for r in after if r.status != 200] == [], summary
    assert max(r.ended_s - r.started_s for r in after) < 1.0, summary


def test_two_workers_hold_exactly_the_planned_connections_and_open_none_under_load(
    pg_cluster: PgCluster,
) -> None:
    proc = _serve(pg_cluster, "serve_workers", "--workers", "2", "--threads", "2").start()
    try:
        assert proc.output.count("prewarmed default: native pool, 2 connections") == 2
        # Sized against the server: max_connections=300 less 3 reserved for superusers.
        assert (
            "database default: 4 connections planned (2 worker(s) x 2); PostgreSQL allows 297"
            in (proc.output)
        )
        planned = _backends(pg_cluster, "serve_workers")
        assert len(planned) == 4  # 2 workers x a pool of 2, all open before the readiness line
        pool = hammer("127.0.0.1", proc.port, clients=8, duration_s=3.0)
        results = [r for c in pool for r in c.results]
        assert len(results) > 20
        assert {r.status for r in results} == {200}
        # Fresh connections too: the kernel spreads them over both workers.
        for _ in range(20):
            client = KeepAliveClient("127.0.0.1", proc.port)
            assert client.get("/api/items/").status == 200
            client.close()
        assert _backends(pg_cluster, "serve_workers") == planned  # 0 new under load
    finally:
        assert proc.stop() == 0


def test_a_plan_larger_than_max_connections_stops_start_up_with_the_numbers(
    pg_cluster: PgCluster,
) -> None:
    import subprocess

    from lagscope.errors import ExitCode
    from lagscope.serve import serve_command

    pg_cluster.psql("DROP DATABASE IF EXISTS serve_capacity")
    pg_cluster.psql("CREATE DATABASE serve_capacity")
    env = dict(os.environ)
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    args = ["--demo", "--database", pg_cluster.dsn_for("serve_capacity"), "--port", "0"]
    args += ["--workers", "2", "--threads", "150", "--db-connections", "400"]
    res = subprocess.run(serve_command(args), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == ExitCode.ENVIRONMENT, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "2 worker(s) x 150 = 300 connections planned for 'default'" in lines[0]
    assert "PostgreSQL allows 297" in lines[0]

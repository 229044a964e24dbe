"""Healthy stacks: no warning-or-worse finding. A false alarm costs a user as much as a miss,
so each stack a user would call healthy is diagnosed, default and ``--quick``: the reference
app served by ``lagscope serve --demo`` on SQLite and on PostgreSQL, and the suite's Django
app behind nginx with lagscope's config (upstream keep-alive), measured through the proxy
alone. The waitress hello and Django-on-waitress stacks are in test_scenarios.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lagscope.diagnose import run
from lagscope.diagnose.model import DiagnoseReport
from lagscope.nginx.config import Endpoint
from lagscope.serve import ServeProcess
from support.pg import PgCluster
from support.wsgi import waitress_server


def _no_problem(report: DiagnoseReport) -> None:
    shown = {f.id: (f.severity, f.cost_ms, f.detail) for f in report.problems}
    assert not shown, shown
    # Every millisecond of the warm budget is claimed: nothing large left unexplained.
    warm = report.budget("warm")
    assert warm is not None
    assert warm.get("unexplained") <= max(5.0, 0.25 * warm.total_ms), warm


def _demo_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LAGSCOPE_DATA_DIR"] = str(data_dir)
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    return env


@pytest.fixture(scope="module")
def demo_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("healthy-demo")
    args = ["--demo", "--port", "0", "--host", "127.0.0.1"]
    with ServeProcess(args, env=_demo_env(data_dir)) as proc:
        yield proc.url.rstrip("/") + "/api/items/"


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "default"])
def test_serve_demo_on_sqlite_is_healthy(demo_sqlite: str, quick: bool) -> None:
    _no_problem(run(demo_sqlite, quick=quick))


@pytest.mark.postgres
def test_serve_demo_on_postgresql_is_healthy(pg_cluster: PgCluster, tmp_path: Path) -> None:
    pg_cluster.psql("DROP DATABASE IF EXISTS healthy_demo")
    pg_cluster.psql("CREATE DATABASE healthy_demo")
    dsn = pg_cluster.dsn_for("healthy_demo")
    args = ["--demo", "--database", dsn, "--port", "0", "--host", "127.0.0.1"]
    with ServeProcess(args, env=_demo_env(tmp_path)) as proc:
        url = proc.url.rstrip("/") + "/api/items/"
        reports = [run(url, quick=True), run(url, database=dsn, quick=True)]
    for report in reports:
        _no_problem(report)


@pytest.mark.nginx
def test_django_behind_nginx_with_upstream_keepalive_is_healthy(
    django_app: Any, start_nginx: Any
) -> None:
    with waitress_server(django_app) as app, start_nginx(Endpoint(*app)) as nginx_port:
        url = f"http://127.0.0.1:{nginx_port}/plain/"
        reports = [run(url, quick=True), run(url)]
    for report in reports:
        _no_problem(report)
        # The app saw its connection reused: nginx keeps its upstream connections.
        assert report.finding("upstream-no-keepalive") is None

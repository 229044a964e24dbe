"""The test suite's throwaway PostgreSQL cluster: :mod:`lagscope.demo.pgcluster` on a free port.

Under root (CI, containers) the cluster is owned and run by an unprivileged account
(``postgres``, else ``nobody``); readiness is ``pg_ctl start -w``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lagscope.demo.pgcluster import PgCluster
from lagscope.demo.pgcluster import find_pg_bin as _find_pg_bin

__all__ = [
    "PgCluster",
    "connect_ms",
    "destroy_cluster",
    "find_pg_bin",
    "make_cluster",
    "running_as_root",
]


def running_as_root() -> bool:
    """True for root on POSIX (PostgreSQL refuses to run as root); never on Windows, which
    has no euid."""
    if sys.platform == "win32":
        return False
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        return os.geteuid() == 0


def find_pg_bin() -> Path | None:
    return _find_pg_bin()


def make_cluster() -> PgCluster:
    return PgCluster.create()


def destroy_cluster(cluster: PgCluster) -> None:
    cluster.remove()


def connect_ms(pg_cluster: PgCluster, port: int | None = None, samples: int = 5) -> list[float]:
    """psycopg connects timed by the test itself, sorted."""
    import psycopg  # only the tests that time connects need it

    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        conn = psycopg.connect(
            host="127.0.0.1",
            port=port or pg_cluster.port,
            user=pg_cluster.user,
            dbname="postgres",
            gssencmode="disable",
        )
        times.append((time.perf_counter() - t0) * 1e3)
        conn.close()
    return sorted(times)

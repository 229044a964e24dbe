"""The test suite's throwaway PostgreSQL cluster: :mod:`lagscope.demo.pgcluster` on a free port.

Under root (CI, containers) the cluster is owned and run by an unprivileged account
(``postgres``, else ``nobody``); readiness is ``pg_ctl start -w``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lagscope.demo.pgcluster import PgCluster
from lagscope.demo.pgcluster import find_pg_bin as _find_pg_bin

__all__ = ["PgCluster", "destroy_cluster", "find_pg_bin", "make_cluster", "running_as_root"]


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

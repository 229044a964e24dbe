"""Fixtures shared by every test package: real servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from support.pg import PgCluster, destroy_cluster, find_pg_bin, make_cluster

# Property tests check what is rendered or parsed, not how fast: hypothesis's default
# 200 ms deadline per example failed them on a loaded 2-core machine, not the code.
settings.register_profile("lagscope", deadline=None)
settings.load_profile("lagscope")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for the whole session (trust auth, loopback only)."""
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    cluster = make_cluster()
    try:
        yield cluster
    finally:
        destroy_cluster(cluster)

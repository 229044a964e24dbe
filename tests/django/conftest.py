"""Fixtures for the Django instrumentation tests: extra database aliases added at run time
(SQLite file, real PostgreSQL) and Django served by a real waitress server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from support.djangodb import database_alias
from support.pg import PgCluster
from support.wsgi import waitress_server

PG_DB = "lagscope_instrument"


@pytest.fixture(scope="session")
def pg_database(pg_cluster: PgCluster) -> dict[str, Any]:
    if PG_DB not in pg_cluster.psql("SELECT datname FROM pg_database").split():
        pg_cluster.psql(f"CREATE DATABASE {PG_DB}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": PG_DB,
        "USER": pg_cluster.user,
        "HOST": "127.0.0.1",
        "PORT": str(pg_cluster.port),
        "OPTIONS": {"gssencmode": "disable"},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "t.sqlite3")}
    return dict(request.getfixturevalue("pg_database"))


@pytest.fixture
def unblocked_db(django_db_blocker: Any) -> Iterator[None]:
    # The server thread opens its own connections; pytest-django's blocker is global.
    with django_db_blocker.unblock():
        yield


@contextmanager
def django_waitress(**adj: Any) -> Iterator[tuple[str, int]]:
    """Django's WSGI handler (the suite's settings) behind a real waitress server."""
    with waitress_server(WSGIHandler(), **adj) as address:
        yield address


@pytest.fixture
def make_alias() -> Any:
    return database_alias


@pytest.fixture
def django_server() -> Any:
    return django_waitress

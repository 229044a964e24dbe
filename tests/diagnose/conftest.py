"""Fixtures for the diagnose tests: real nginx (from tests/support/nginx.py), the suite's
Django app as a WSGI callable, and Django settings for the throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler

from support.nginx import nginx, nginx_prefix, start_nginx
from support.pg import PgCluster

__all__ = ["django_app", "nginx", "nginx_prefix", "pg_settings", "start_nginx"]


@pytest.fixture
def django_app(django_db_blocker: Any) -> Iterator[Any]:
    # The waitress threads open their own connections; pytest-django's blocker is global.
    with django_db_blocker.unblock():
        yield WSGIHandler()


@pytest.fixture
def pg_settings(pg_cluster: PgCluster) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": pg_cluster.user,
        "HOST": "127.0.0.1",
        "PORT": str(pg_cluster.port),
        "OPTIONS": {"gssencmode": "disable"},
    }

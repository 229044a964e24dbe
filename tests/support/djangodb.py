"""Database aliases added to the suite's Django at run time (real PostgreSQL, SQLite files)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections


@contextmanager
def database_alias(alias: str, settings_dict: dict[str, Any]) -> Iterator[str]:
    """Make ``alias`` usable through ``connections[alias]`` for the duration."""
    configured = connections.configure_settings(
        {"default": connections.settings["default"], alias: settings_dict}
    )
    connections.settings[alias] = configured[alias]
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]

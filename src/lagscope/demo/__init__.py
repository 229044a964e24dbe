"""The reference app: a small Django project, shipped inside the package.

``lagscope.demo`` owns a small Django project: an ``Item`` model with 500 rows,
``/api/items/`` (JSON) and ``/items/`` (HTML table), with the lagscope middleware installed.
It runs on SQLite in a per-user data directory by default (created, migrated and seeded on
first run) or on PostgreSQL when given a ``postgresql://`` URL.

Settings are plain data built by :func:`lagscope.demo.config.build_settings`;
``lagscope.demo.settings`` is the ``DJANGO_SETTINGS_MODULE`` that reads them from the
environment (``LAGSCOPE_DEMO_DATABASE``, ``LAGSCOPE_DATA_DIR``), so the same project works
under ``lagscope serve --demo``, granian workers and a plain ``DJANGO_SETTINGS_MODULE``.
"""

from __future__ import annotations

from lagscope.demo.config import (
    DATA_DIR_ENV,
    DATABASE_ENV,
    ITEM_COUNT,
    build_settings,
    default_data_dir,
    parse_database_url,
)

__all__ = [
    "DATABASE_ENV",
    "DATA_DIR_ENV",
    "ITEM_COUNT",
    "build_settings",
    "default_data_dir",
    "parse_database_url",
]

"""The reference app: a small Django project, shipped inside the package.

``lagscope.refapp`` owns a small Django project: an ``Item`` model with 500 rows,
``/api/items/`` (JSON) and ``/items/`` (HTML table), with the lagscope middleware installed.
It runs on SQLite in a per-user data directory by default (created, migrated and seeded on
first run) or on PostgreSQL when given a ``postgresql://`` URL.

Settings are plain data built by :func:`lagscope.refapp.config.build_settings`;
``lagscope.refapp.settings`` is the ``DJANGO_SETTINGS_MODULE`` that reads them from the
environment (``LAGSCOPE_DEMO_DATABASE``, ``LAGSCOPE_DATA_DIR``), so the same project works
under ``lagscope serve --demo``, granian workers and a plain ``DJANGO_SETTINGS_MODULE``.
"""

from __future__ import annotations

# The package's public names are config's: one list, in config.__all__.
from lagscope.refapp import config
from lagscope.refapp.config import *  # noqa: F403

__all__ = config.__all__

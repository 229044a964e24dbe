"""``DJANGO_SETTINGS_MODULE`` for the reference app: settings read from the environment.

``LAGSCOPE_DEMO_DATABASE`` (a ``postgresql://`` or ``sqlite:///`` URL; empty means SQLite in
the per-user data dir) and ``LAGSCOPE_DATA_DIR`` (where that SQLite file lives).
``LAGSCOPE_DEMO_TEMPLATES`` (a directory searched for templates first).
``LAGSCOPE_DEMO_SERVERTIMING=0`` leaves the lagscope middleware out (for comparisons).
"""

from __future__ import annotations

import os

from lagscope.refapp.config import DATABASE_ENV, TEMPLATES_ENV, build_settings, default_data_dir

globals().update(
    build_settings(
        os.environ.get(DATABASE_ENV) or None,
        default_data_dir(),
        servertiming=os.environ.get("LAGSCOPE_DEMO_SERVERTIMING", "1") != "0",
        template_dirs=tuple(filter(None, [os.environ.get(TEMPLATES_ENV)])),
    )
)

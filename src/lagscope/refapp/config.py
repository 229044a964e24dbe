"""Pure settings for the reference app: its database setting and the settings dict.

No Django import here, so the settings can be built and tested without configuring Django.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "DATABASE_ENV",
    "DATA_DIR_ENV",
    "ITEM_COUNT",
    "TEMPLATES_ENV",
    "build_settings",
    "default_data_dir",
    "parse_database_url",
]

# Environment variables read by ``lagscope.refapp.settings`` (the launcher sets them, so
# granian worker processes see the same configuration as the parent).
DATABASE_ENV = "LAGSCOPE_DEMO_DATABASE"
DATA_DIR_ENV = "LAGSCOPE_DATA_DIR"
# A directory searched for templates before the app's own (the demo puts an editable copy
# of the page's template there: its "first page after a code edit" row edits it).
TEMPLATES_ENV = "LAGSCOPE_DEMO_TEMPLATES"

# The reference table's size: 500 rows, ~94 KB of JSON.
ITEM_COUNT = 500


def default_data_dir(env: dict[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-user data directory (where the SQLite database lives).

    ``LAGSCOPE_DATA_DIR`` wins; otherwise the platform's usual place for app data.
    """
    env = dict(os.environ) if env is None else env
    platform = sys.platform if platform is None else platform
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV])
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "lagscope"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "lagscope"
    return Path(env.get("XDG_DATA_HOME") or home / ".local" / "share") / "lagscope"


def parse_database_url(url: str | None, data_dir: Path) -> dict[str, Any]:
    """Turn ``sqlite:///path``, a PostgreSQL connection string (``postgresql://…`` or libpq's
    ``key=value`` form, read by :mod:`lagscope.dsn`) or None into a Django
    ``DATABASES['default']`` dict. None means SQLite in ``data_dir``. An error never
    quotes a PostgreSQL string (it may hold a password)."""
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(data_dir / "demo.sqlite3")}
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        path = unquote(url.partition("://")[2].partition("?")[0])
        # sqlite:///relative and sqlite:////absolute, as dj-database-url reads them.
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise LagscopeError("config", f"no file name in database URL {url!r}", ExitCode.USAGE)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if scheme not in ("", "postgres", "postgresql"):
        raise LagscopeError(
            "config",
            f"unsupported database URL scheme {scheme!r} (use postgresql://… or sqlite:///…)",
            ExitCode.USAGE,
        )
    from lagscope import dsn

    return dsn.django_settings(dsn.parse(url, need_dbname=True))


def _static_files_served() -> bool:
    """Whether WhiteNoise (the ``serve`` extra) is installed to serve the page's assets."""
    return importlib.util.find_spec("whitenoise") is not None


def build_settings(
    database_url: str | None = None,
    data_dir: Path | None = None,
    *,
    servertiming: bool = True,
    template_dirs: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The reference app's Django settings as a plain dict (upper-case names only).

    The HTML page loads like a real Django page: 3 stylesheets, 3 scripts and 4 images
    through ``django.contrib.staticfiles`` and WhiteNoise (when installed).

    ``template_dirs``: searched before the app's own templates (``TEMPLATES`` ``DIRS``).

    ``servertiming`` installs ``lagscope.django`` and its middleware first in MIDDLEWARE.
    CommonMiddleware stays in: it sets Content-Length on every non-streaming response,
    which is what keeps waitress connections alive.
    """
    data_dir = default_data_dir() if data_dir is None else data_dir
    apps = [
        "django.contrib.contenttypes",
        "django.contrib.staticfiles",
        "lagscope.refapp.apps.RefAppConfig",
    ]
    middleware = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    if _static_files_served():
        # WhiteNoise's place: right after SecurityMiddleware (its documentation).
        middleware.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")
    if servertiming:
        apps.insert(0, "lagscope.django")
        middleware.insert(0, "lagscope.django.middleware.ServerTimingMiddleware")
    return {
        # A demo that listens on loopback: no secrets to protect, and DEBUG stays off so
        # templates are cached and no query log grows without bound.
        "SECRET_KEY": "lagscope-demo-not-secret",
        "DEBUG": False,
        "ALLOWED_HOSTS": ["*"],
        "INSTALLED_APPS": apps,
        "MIDDLEWARE": middleware,
        "ROOT_URLCONF": "lagscope.refapp.urls",
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": list(template_dirs),
                "APP_DIRS": True,
                "OPTIONS": {},
            }
        ],
        "DATABASES": {"default": parse_database_url(database_url, data_dir)},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "LANGUAGE_CODE": "en-us",
        "USE_I18N": False,
        "WSGI_APPLICATION": "lagscope.refapp.wsgi.application",
        # The page's stylesheets, scripts and images (refapp/static/refapp/), found by
        # staticfiles' app-directories finder and served by WhiteNoise from the installed
        # package: no collectstatic step, no STATIC_ROOT to create per install. WhiteNoise's
        # default caching (max-age 60 s with DEBUG off) is what a browser's reload meets.
        "STATIC_URL": "/static/",
        "WHITENOISE_USE_FINDERS": True,
        "LOGGING_CONFIG": None,
    }

"""Load the app to serve: one loader per kind of app (the reference app, a Django settings
module, a ``module:app`` WSGI callable), each returning the WSGI app ready to serve.

A Django app's ``DATABASES`` are handed to :class:`~lagscope.serve.database.Databases`
before anything connects; the reference app is also migrated and seeded on first run.
Every app is wrapped in :class:`~lagscope.serve.sizing.ContentLengthMiddleware`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.database import Databases, DbPlan, DbSettings, describe_database
from lagscope.serve.settings import ServeConfig
from lagscope.serve.sizing import ContentLengthMiddleware

__all__ = ["LOADERS", "AppSpec", "LoadedApp", "load_app"]

WSGIApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True)
class AppSpec:
    """What to serve. ``kind`` demo: ``lagscope.refapp`` (``database`` is its URL, None =
    SQLite in the per-user data dir); django: ``target`` is a settings module; wsgi:
    ``target`` is ``module:attribute``."""

    kind: Literal["demo", "django", "wsgi"]
    target: str = ""
    database: str | None = None

    def describe(self) -> str:
        if self.kind == "demo":
            return "the reference app (lagscope.refapp)"
        if self.kind == "django":
            return f"Django project {self.target}"
        return f"WSGI app {self.target}"


@dataclass
class LoadedApp:
    """The app to serve; ``databases`` is None when no Django project is configured."""

    app: WSGIApp
    spec: AppSpec
    databases: Databases | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def plans(self) -> list[DbPlan]:
        return self.databases.plans if self.databases is not None else []


@dataclass
class _Loaded:
    app: WSGIApp
    uses_django: bool
    notes: list[str] = field(default_factory=list)


Loader = Callable[[AppSpec, Databases, bool], _Loaded]


def _require_django() -> None:
    if importlib.util.find_spec("django") is None:
        raise LagscopeError(
            "config", "Django is not installed (pip install 'lagscope[serve]')", ExitCode.USAGE
        )


def _setup_django(settings_module: str, db: Databases, tune: bool) -> None:
    """Point Django at ``settings_module``, bound its connect times, apply the plan when
    ``tune``, and run ``django.setup()``."""
    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    current = getattr(settings, "SETTINGS_MODULE", None) if settings.configured else None
    if settings.configured and current != settings_module:
        # Django settings are process-wide: one project per process.
        raise LagscopeError(
            "config",
            f"Django is already configured with {current!r} in this process; serve "
            f"{settings_module!r} from a new process",
            ExitCode.USAGE,
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    try:
        settings.DATABASES  # noqa: B018  (imports the settings module)
    except (ImportError, ImproperlyConfigured) as exc:
        raise LagscopeError(
            "config",
            f"cannot import Django settings {settings_module!r}: {exc}",
            ExitCode.USAGE,
        ) from exc
    if tune:
        db.configure(settings.DATABASES)
    else:
        db.bound_connects(settings.DATABASES)
    try:
        django.setup()
    except (ImportError, ImproperlyConfigured) as exc:
        raise LagscopeError(
            "config", f"Django project {settings_module!r}: {exc}", ExitCode.USAGE
        ) from exc


def _django_wsgi_app() -> WSGIApp:
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _load_demo(spec: AppSpec, db: Databases, migrate: bool) -> _Loaded:
    """The reference app; migrate and seed on first run (``migrate``), then apply the plan."""
    _require_django()
    from lagscope.refapp.config import DATABASE_ENV, ITEM_COUNT

    if spec.database:
        os.environ[DATABASE_ENV] = spec.database
    else:
        os.environ.pop(DATABASE_ENV, None)
    # Migrate and seed on plain connections (a pool would turn an unreachable database
    # into a wait for its timeout), then apply the plan for serving.
    _setup_django("lagscope.refapp.settings", db, tune=False)
    from django.conf import settings
    from django.db import DatabaseError, connections

    from lagscope.refapp.seed import ensure_database

    where = describe_database(connections["default"].settings_dict)
    note = f"database: {where}"
    if migrate:
        start = time.perf_counter()
        try:
            created = ensure_database(ITEM_COUNT)
        except DatabaseError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise LagscopeError("database", f"{where}: {detail}", ExitCode.CONNECT) from exc
        finally:
            # The main thread never serves: close its connection before threads start.
            connections.close_all()
        if created:
            elapsed_ms = (time.perf_counter() - start) * 1000
            note += f" (created and seeded {ITEM_COUNT} items in {elapsed_ms:.0f} ms)"
    db.configure(settings.DATABASES)
    return _Loaded(_django_wsgi_app(), True, [note])


def _load_django(spec: AppSpec, db: Databases, migrate: bool) -> _Loaded:
    """A Django project by settings module (``migrate`` is the project's own business)."""
    _require_django()
    _setup_django(spec.target, db, tune=True)
    return _Loaded(_django_wsgi_app(), True)


def _load_wsgi(spec: AppSpec, db: Databases, migrate: bool) -> _Loaded:
    """``module:attribute``; a Django app behind its own wsgi.py is tuned the same way."""
    module_name, _, attr = spec.target.partition(":")
    if not module_name or not attr:
        raise LagscopeError(
            "config", f"expected module:attribute, got {spec.target!r}", ExitCode.USAGE
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LagscopeError(
            "config", f"cannot import {module_name!r}: {exc}", ExitCode.USAGE
        ) from exc
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LagscopeError(
                "config", f"{module_name!r} has no attribute {attr!r}", ExitCode.USAGE
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise LagscopeError("config", f"{spec.target} is not callable", ExitCode.USAGE)
    uses_django = False
    if importlib.util.find_spec("django") is not None:
        from django.conf import settings

        if settings.configured:
            db.configure(settings.DATABASES)
            uses_django = True
    return _Loaded(obj, uses_django)


LOADERS: dict[str, Loader] = {"demo": _load_demo, "django": _load_django, "wsgi": _load_wsgi}


def load_app(spec: AppSpec, config: ServeConfig, *, migrate: bool = True) -> LoadedApp:
    """Import and configure the app with the loader for its kind. ``migrate=False`` skips
    the reference app's migrate-and-seed (a worker whose parent did it already)."""
    if spec.kind != "demo" and os.getcwd() not in sys.path:
        # As manage.py, gunicorn and waitress-serve do: the project in the current
        # directory is importable (the console script's own directory is sys.path[0]).
        sys.path.insert(0, os.getcwd())
    db = Databases(DbSettings.from_config(config))
    loaded = LOADERS[spec.kind](spec, db, migrate)
    wrapped = ContentLengthMiddleware(loaded.app, config.sized_body_max_bytes)
    return LoadedApp(wrapped, spec, db if loaded.uses_django else None, loaded.notes)

"""Load the app to serve (reference app, Django settings module, or ``module:app``), tune its
database connections per the :class:`~lagscope.serve.settings.DbPlan`, and prewarm them.

This module touches the database (migrations, seeding, prewarm) but no client sockets.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.settings import DbPlan, ServeConfig, apply_database_plan, plan_database
from lagscope.serve.sizing import ContentLengthMiddleware

__all__ = [
    "AppSpec",
    "LoadedApp",
    "PoolGuard",
    "PrewarmResult",
    "ThreadPrewarm",
    "load_app",
    "native_pools",
    "prewarm_pools",
    "prewarm_thread",
    "shutdown_databases",
]

WSGIApp = Callable[..., Iterable[bytes]]


@dataclass(frozen=True)
class AppSpec:
    """What to serve. ``kind`` demo: ``lagscope.demo`` (``database`` is its URL, None =
    SQLite in the per-user data dir); django: ``target`` is a settings module; wsgi:
    ``target`` is ``module:attribute``."""

    kind: Literal["demo", "django", "wsgi"]
    target: str = ""
    database: str | None = None

    def describe(self) -> str:
        if self.kind == "demo":
            return "the reference app (lagscope.demo)"
        if self.kind == "django":
            return f"Django project {self.target}"
        return f"WSGI app {self.target}"


@dataclass(frozen=True)
class PrewarmResult:
    what: str
    connections: int
    elapsed_ms: float


@dataclass
class LoadedApp:
    app: WSGIApp
    spec: AppSpec
    plans: list[DbPlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uses_django: bool = False


def connect_timeout_s(prewarm_timeout_s: float) -> int:
    """The connect timeout given to every PostgreSQL connection serve opens.

    libpq and psycopg take whole seconds and treat anything below 2 as 2; psycopg's own
    default is 130 s, which a database that accepts and never answers would hold for each
    connection. At most 10 s: a request in persistent mode may itself pay one connect.
    """
    return max(2, min(10, math.ceil(prewarm_timeout_s)))


def bound_connect_times(databases: Mapping[str, dict[str, Any]], timeout_s: int) -> None:
    """Give every PostgreSQL alias a ``connect_timeout`` (one the project set wins)."""
    for entry in databases.values():
        engine = str(entry.get("ENGINE", ""))
        if engine.endswith("postgresql") or engine.endswith("postgis"):
            options = entry.setdefault("OPTIONS", {})
            options.setdefault("connect_timeout", timeout_s)


# psycopg_pool retries a failed connect with exponential backoff (1, 2, 4, 8 … s) for up to
# reconnect_timeout (5 min by default), so after a 15 s outage it waited up to ~13 s more
# before trying again. A short attempt chain gives up quickly (the pool shrinks), and
# PoolGuard starts a fresh chain, whose first try is immediate, every guard interval.
POOL_RECONNECT_TIMEOUT_S = 0.5
POOL_GUARD_INTERVAL_S = 0.2


def tune_pool_recovery(pool_options: dict[str, Any]) -> None:
    """Pool options for a fast recovery after an outage (the project's own options win).

    ``max_waiting`` is left unbounded: a waiting request holds a worker thread, so the
    queue can never be deeper than ``--threads``.
    """
    pool_options.setdefault("reconnect_timeout", POOL_RECONNECT_TIMEOUT_S)


class PoolGuard:
    """Refills native pools that lost connections as soon as the database accepts again.

    Every ``interval_s`` it looks at each pool's size; a pool below ``min_size`` (its
    reconnect attempts gave up while the database was down) gets ``check()``, which starts
    a new growth attempt at once. A request waiting for a connection is handed the first
    one that opens, so once the database is back a request succeeds within about
    ``interval_s + reconnect_timeout + one connect``.
    """

    def __init__(self, pools: list[Any], interval_s: float = POOL_GUARD_INTERVAL_S) -> None:
        self.pools = pools
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PoolGuard:
        if self.pools:
            self._thread = threading.Thread(
                target=self._run, name="lagscope-pool-guard", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pool in self.pools:
                with contextlib.suppress(Exception):  # a closed pool, a failed check
                    stats = pool.get_stats()
                    if stats["pool_size"] < stats["pool_min"]:
                        pool.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def describe_database(entry: Mapping[str, Any]) -> str:
    """Where a DATABASES entry points, for messages (no password)."""
    if str(entry.get("ENGINE", "")).endswith("sqlite3"):
        return f"SQLite {entry.get('NAME')}"
    host = entry.get("HOST") or "local socket"
    return f"PostgreSQL {host}:{entry.get('PORT') or 5432}/{entry.get('NAME')}"


def _configure_django_databases(config: ServeConfig) -> list[DbPlan]:
    """Apply the connection plan to every DATABASES entry, before any connection opens."""
    import django
    from django.conf import settings

    psycopg3 = importlib.util.find_spec("psycopg") is not None
    has_pool = importlib.util.find_spec("psycopg_pool") is not None
    plans = []
    for alias, entry in settings.DATABASES.items():
        plan = plan_database(
            alias,
            entry,
            django_version=(django.VERSION[0], django.VERSION[1]),
            psycopg3=psycopg3,
            psycopg_pool=has_pool,
            threads=config.threads,
            db_connections=config.db_connections,
            prewarm=config.prewarm,
            allow_pool=config.db_pool,
        )
        apply_database_plan(entry, plan, config.health_checks)
        if plan.mode == "pool":
            tune_pool_recovery(entry["OPTIONS"]["pool"])
        plans.append(plan)
    return plans


def _setup_django(settings_module: str, config: ServeConfig, tune: bool = True) -> list[DbPlan]:
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
    # Before anything connects (migrations, checks, prewarm): no connect may hang.
    bound_connect_times(settings.DATABASES, connect_timeout_s(config.prewarm_timeout))
    plans = _configure_django_databases(config) if tune else []
    try:
        django.setup()
    except (ImportError, ImproperlyConfigured) as exc:
        raise LagscopeError(
            "config", f"Django project {settings_module!r}: {exc}", ExitCode.USAGE
        ) from exc
    return plans


def _database_error(exc: Exception, where: str) -> LagscopeError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return LagscopeError("database", f"{where}: {detail}", ExitCode.CONNECT)


def load_app(spec: AppSpec, config: ServeConfig) -> LoadedApp:
    """Import and configure the app; for the demo also migrate and seed on first run."""
    if spec.kind in ("demo", "django") and importlib.util.find_spec("django") is None:
        raise LagscopeError(
            "config", "Django is not installed (pip install 'lagscope[serve]')", ExitCode.USAGE
        )
    notes: list[str] = []
    if spec.kind != "demo" and os.getcwd() not in sys.path:
        # As manage.py, gunicorn and waitress-serve do: the project in the current
        # directory is importable (the console script's own directory is sys.path[0]).
        sys.path.insert(0, os.getcwd())
    if spec.kind == "demo":
        from lagscope.demo.config import DATABASE_ENV, ITEM_COUNT

        if spec.database:
            os.environ[DATABASE_ENV] = spec.database
        else:
            os.environ.pop(DATABASE_ENV, None)
        # Migrate and seed on plain connections (a pool would turn an unreachable
        # database into a wait for its timeout), then apply the plan for serving.
        _setup_django("lagscope.demo.settings", config, tune=False)
        from django.db import DatabaseError, connections

        from lagscope.demo.seed import ensure_database

        where = describe_database(connections["default"].settings_dict)
        start = time.perf_counter()
        try:
            created = ensure_database(ITEM_COUNT)
        except DatabaseError as exc:
            raise _database_error(exc, where) from exc
        finally:
            # The main thread never serves: close its connection before threads start.
            connections.close_all()
        plans = _configure_django_databases(config)
        elapsed_ms = (time.perf_counter() - start) * 1000
        if created:
            notes.append(
                f"database: {where} (created and seeded {ITEM_COUNT} items in {elapsed_ms:.0f} ms)"
            )
        else:
            notes.append(f"database: {where}")
        from django.core.wsgi import get_wsgi_application

        app: WSGIApp = get_wsgi_application()
        uses_django = True
    elif spec.kind == "django":
        plans = _setup_django(spec.target, config)
        from django.core.wsgi import get_wsgi_application

        app = get_wsgi_application()
        uses_django = True
    else:
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
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise LagscopeError(
                    "config", f"{module_name!r} has no attribute {attr!r}", ExitCode.USAGE
                )
            obj = getattr(obj, part)
        if not callable(obj):
            raise LagscopeError("config", f"{spec.target} is not callable", ExitCode.USAGE)
        app = obj
        plans = []
        uses_django = False
        if importlib.util.find_spec("django") is not None:
            from django.conf import settings

            if settings.configured:
                # A Django app behind its own wsgi.py: tune it the same way.
                bound_connect_times(settings.DATABASES, connect_timeout_s(config.prewarm_timeout))
                plans = _configure_django_databases(config)
                uses_django = True
    wrapped = ContentLengthMiddleware(app, config.sized_body_max_bytes)
    return LoadedApp(wrapped, spec, plans, notes, uses_django)


def prewarm_pools(loaded: LoadedApp, timeout_s: float) -> list[PrewarmResult]:
    """Open every native pool and wait until ``min_size`` connections are ready."""
    results = []
    from django.db import connections

    for plan in loaded.plans:
        if plan.mode != "pool":
            continue
        start = time.perf_counter()
        # Only the PostgreSQL backend has .pool; plan.mode == 'pool' implies it.
        pool = connections[plan.alias].pool  # type: ignore[attr-defined]
        try:
            pool.open()
            # Blocks until min_size connections are in the pool (open(wait=True) would
            # return at once on a pool that something else already opened).
            pool.wait(timeout=timeout_s)
        except Exception as exc:  # psycopg_pool.PoolTimeout, OperationalError
            where = describe_database(connections[plan.alias].settings_dict)
            raise LagscopeError(
                "prewarm",
                f"database {plan.alias!r} ({where}): the pool could not open {plan.min_size} "
                f"connections within {timeout_s:g} s ({type(exc).__name__}: {exc})",
                ExitCode.CONNECT,
            ) from exc
        results.append(
            PrewarmResult(
                f"{plan.alias}: native pool, {plan.min_size} connections",
                plan.min_size,
                (time.perf_counter() - start) * 1000,
            )
        )
    return results


def prewarm_thread(loaded: LoadedApp) -> int:
    """Open this thread's persistent connections (run once in every worker thread)."""
    from django.db import connections

    opened = 0
    for plan in loaded.plans:
        if plan.mode == "persistent":
            connections[plan.alias].ensure_connection()
            opened += 1
    return opened


class ThreadPrewarm:
    """A task for waitress's dispatcher that opens the connections of whichever worker
    thread runs it, then waits at a barrier so that each thread runs exactly one."""

    def __init__(self, loaded: LoadedApp, barrier: threading.Barrier) -> None:
        self.loaded = loaded
        self.barrier = barrier
        self.opened = 0
        self.error: BaseException | None = None

    def defer(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def service(self) -> None:
        try:
            self.opened = prewarm_thread(self.loaded)
        except BaseException as exc:
            self.error = exc
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()


def native_pools(loaded: LoadedApp) -> list[Any]:
    """The psycopg pools of the aliases planned as ``pool`` (created, maybe not opened)."""
    from django.db import connections

    # Only the PostgreSQL backend has .pool; plan.mode == 'pool' implies it.
    return [connections[p.alias].pool for p in loaded.plans if p.mode == "pool"]  # type: ignore[attr-defined]


def shutdown_databases() -> None:
    """Close the pools (their background workers are threads that must stop)."""
    from django.db import connections

    for alias in connections:
        conn = connections[alias]
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None and conn.settings_dict.get("OPTIONS", {}).get("pool"):
            with contextlib.suppress(Exception):  # best effort at exit
                close_pool()

"""The database connections of a served Django app: plan, apply, prewarm, keep healthy.

One home for everything serve does to ``DATABASES``:

- :func:`plan_database` (pure): per alias, Django's native psycopg pool (Django >= 5.1 with
  psycopg 3 and psycopg_pool) or persistent per-thread connections with health checks;
- :func:`apply_database_plan` / :func:`bound_connect_times` / :func:`tune_pool_recovery`:
  edit the ``DATABASES`` entries before anything connects (every PostgreSQL connect gets a
  bounded ``connect_timeout``; pools recover fast after an outage);
- :class:`Databases`: the plans of this process and their prewarm, pools through
  ``pool.wait()`` and per-thread connections through tasks on the server's own thread
  pool, so the first request finds a warm connection; then :class:`PoolGuard` and shutdown.

Touches the database (prewarm) but no client sockets. The serve settings reach this module
once, as :class:`DbSettings`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lagscope.errors import ExitCode, LagscopeError

if TYPE_CHECKING:
    from lagscope.serve.settings import ServeConfig

__all__ = [
    "Databases",
    "DbPlan",
    "DbSettings",
    "PoolGuard",
    "PrewarmResult",
    "ThreadPrewarm",
    "apply_database_plan",
    "bound_connect_times",
    "connect_timeout_s",
    "describe_database",
    "plan_database",
    "tune_pool_recovery",
]

# psycopg_pool retries a failed connect with exponential backoff (1, 2, 4, 8 … s) for up to
# reconnect_timeout (5 min by default), so after a 17 s outage it waited up to ~13 s more
# before trying again. A short attempt chain gives up quickly (the pool shrinks), and
# PoolGuard starts a fresh chain, whose first try is immediate, every guard interval.
POOL_RECONNECT_TIMEOUT_S = 0.5
POOL_GUARD_INTERVAL_S = 0.2
# A request waits at most this long for a free pool connection (e.g. while PostgreSQL
# restarts) before failing.
POOL_CHECKOUT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DbSettings:
    """What the database half needs from the serve settings."""

    threads: int
    db_connections: int
    prewarm: bool
    prewarm_timeout_s: float
    allow_pool: bool
    health_checks: bool

    @classmethod
    def from_config(cls, config: ServeConfig) -> DbSettings:
        return cls(
            threads=config.threads,
            db_connections=config.db_connections,
            prewarm=config.prewarm,
            prewarm_timeout_s=config.prewarm_timeout,
            allow_pool=config.db_pool,
            health_checks=config.health_checks,
        )


@dataclass(frozen=True)
class DbPlan:
    """How one database alias is kept warm.

    ``pool``: Django's native psycopg pool (Django >= 5.1, psycopg 3), CONN_MAX_AGE=0,
    ``min_size`` connections opened before serving. ``persistent``: CONN_MAX_AGE=None and
    one connection opened in every worker thread before serving. ``none``: prewarm off.
    """

    alias: str
    mode: Literal["pool", "persistent", "none"]
    min_size: int
    max_size: int
    why: str


@dataclass(frozen=True)
class PrewarmResult:
    what: str
    connections: int
    elapsed_ms: float


def _is_postgresql(entry: Mapping[str, Any]) -> bool:
    engine = str(entry.get("ENGINE", ""))
    return engine.endswith("postgresql") or engine.endswith("postgis")


def plan_database(
    alias: str,
    settings_dict: Mapping[str, Any],
    *,
    django_version: tuple[int, int],
    psycopg3: bool,
    psycopg_pool: bool,
    threads: int,
    db_connections: int,
    prewarm: bool,
    allow_pool: bool = True,
) -> DbPlan:
    engine = str(settings_dict.get("ENGINE", ""))
    if not prewarm:
        return DbPlan(alias, "none", 0, 0, "prewarm is off")
    is_pg = _is_postgresql(settings_dict)
    if is_pg and allow_pool and django_version >= (5, 1) and psycopg3 and psycopg_pool:
        size = min(threads, db_connections)
        return DbPlan(
            alias,
            "pool",
            size,
            size,
            f"Django {django_version[0]}.{django_version[1]} + psycopg 3: native pool, "
            f"min_size=max_size={size} (one per thread, never shrinks), opened before serving",
        )
    missing = []
    if is_pg and not allow_pool:
        missing.append("--no-db-pool")
    elif is_pg and django_version < (5, 1):
        missing.append(f"Django {django_version[0]}.{django_version[1]} has no native pool")
    if is_pg and allow_pool and not psycopg3:
        missing.append("psycopg 3 not installed")
    if is_pg and allow_pool and psycopg3 and not psycopg_pool:
        missing.append("psycopg_pool not installed")
    reason = "; ".join(missing) if missing else f"{engine.rsplit('.', 1)[-1]} has no pool"
    return DbPlan(
        alias,
        "persistent",
        threads,
        threads,
        f"{reason}: CONN_MAX_AGE=None with health checks, one connection per worker thread",
    )


def apply_database_plan(settings_dict: dict[str, Any], plan: DbPlan, health_checks: bool) -> None:
    """Edit one ``DATABASES`` entry in place (before Django opens any connection)."""
    settings_dict["CONN_HEALTH_CHECKS"] = health_checks
    if plan.mode == "pool":
        options = settings_dict.setdefault("OPTIONS", {})
        pool = options.get("pool")
        pool = dict(pool) if isinstance(pool, dict) else {}
        pool.setdefault("min_size", plan.min_size)
        pool.setdefault("max_size", plan.max_size)
        pool.setdefault("timeout", POOL_CHECKOUT_TIMEOUT_S)
        options["pool"] = pool
        # The pool owns connection lifetime; Django refuses a pool with persistent conns.
        settings_dict["CONN_MAX_AGE"] = 0
    elif plan.mode == "persistent":
        settings_dict["CONN_MAX_AGE"] = None


def tune_pool_recovery(pool_options: dict[str, Any]) -> None:
    """Pool options for a fast recovery after an outage (the project's own options win).

    ``max_waiting`` is left unbounded: a waiting request holds a worker thread, so the
    queue can never be deeper than ``--threads``.
    """
    pool_options.setdefault("reconnect_timeout", POOL_RECONNECT_TIMEOUT_S)


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
        if _is_postgresql(entry):
            options = entry.setdefault("OPTIONS", {})
            options.setdefault("connect_timeout", timeout_s)


def describe_database(entry: Mapping[str, Any]) -> str:
    """Where a DATABASES entry points, for messages (no password)."""
    if str(entry.get("ENGINE", "")).endswith("sqlite3"):
        return f"SQLite {entry.get('NAME')}"
    host = entry.get("HOST") or "local socket"
    return f"PostgreSQL {host}:{entry.get('PORT') or 5432}/{entry.get('NAME')}"


class ThreadPrewarm:
    """A task for the server's thread pool that opens the persistent connections of
    whichever worker thread runs it, then waits at a barrier so that each thread runs
    exactly one. Duck-typed (defer/service/cancel), as waitress's own tasks are."""

    def __init__(self, aliases: list[str], barrier: threading.Barrier) -> None:
        self.aliases = aliases
        self.barrier = barrier
        self.opened = 0
        self.error: BaseException | None = None

    def defer(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def service(self) -> None:
        from django.db import connections

        try:
            for alias in self.aliases:
                connections[alias].ensure_connection()
                self.opened += 1
        except BaseException as exc:
            self.error = exc
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait()


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


AddTask = Callable[[ThreadPrewarm], None]


@dataclass
class Databases:
    """The database plans of this process and what is done with them while serving."""

    settings: DbSettings
    plans: list[DbPlan] = field(default_factory=list)
    _guard: PoolGuard | None = None

    def bound_connects(self, databases: Mapping[str, dict[str, Any]]) -> None:
        """Before anything connects (migrations, checks, prewarm): no connect may hang."""
        bound_connect_times(databases, connect_timeout_s(self.settings.prewarm_timeout_s))

    def configure(self, databases: Mapping[str, dict[str, Any]]) -> None:
        """Plan and apply every alias (Django imported, no connection opened yet)."""
        import django

        s = self.settings
        psycopg3 = importlib.util.find_spec("psycopg") is not None
        has_pool = importlib.util.find_spec("psycopg_pool") is not None
        self.bound_connects(databases)
        self.plans = []
        for alias, entry in databases.items():
            plan = plan_database(
                alias,
                entry,
                django_version=(django.VERSION[0], django.VERSION[1]),
                psycopg3=psycopg3,
                psycopg_pool=has_pool,
                threads=s.threads,
                db_connections=s.db_connections,
                prewarm=s.prewarm,
                allow_pool=s.allow_pool,
            )
            apply_database_plan(entry, plan, s.health_checks)
            if plan.mode == "pool":
                tune_pool_recovery(entry["OPTIONS"]["pool"])
            self.plans.append(plan)

    def _pools(self) -> list[tuple[DbPlan, Any]]:
        from django.db import connections

        # Only the PostgreSQL backend has .pool; plan.mode == 'pool' implies it.
        return [(p, connections[p.alias].pool) for p in self.plans if p.mode == "pool"]  # type: ignore[attr-defined]

    def prewarm(self, add_task: AddTask | None) -> list[PrewarmResult]:
        """Open the pools (``min_size`` each), then one persistent connection in each of
        ``threads`` worker threads through ``add_task`` (None: the server cannot run tasks
        before serving, so persistent connections open on first use)."""
        if not self.settings.prewarm:
            return []
        results = [self._prewarm_pool(plan, pool) for plan, pool in self._pools()]
        persistent = [p.alias for p in self.plans if p.mode == "persistent"]
        if persistent and add_task is not None:
            results.append(self._prewarm_threads(persistent, add_task))
        return results

    def _prewarm_pool(self, plan: DbPlan, pool: Any) -> PrewarmResult:
        from django.db import connections

        timeout_s = self.settings.prewarm_timeout_s
        start = time.perf_counter()
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
        return PrewarmResult(
            f"{plan.alias}: native pool, {plan.min_size} connections",
            plan.min_size,
            (time.perf_counter() - start) * 1000,
        )

    def _prewarm_threads(self, aliases: list[str], add_task: AddTask) -> PrewarmResult:
        threads = self.settings.threads
        start = time.perf_counter()
        barrier = threading.Barrier(threads + 1, timeout=self.settings.prewarm_timeout_s)
        tasks = [ThreadPrewarm(aliases, barrier) for _ in range(threads)]
        for task in tasks:
            add_task(task)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        errors = [t.error for t in tasks if t.error is not None]
        if errors or barrier.broken:
            reason = f"{type(errors[0]).__name__}: {errors[0]}" if errors else "timed out"
            raise LagscopeError(
                "prewarm",
                f"could not open a database connection in every worker thread ({reason})",
                ExitCode.CONNECT,
            )
        return PrewarmResult(
            f"{', '.join(aliases)}: persistent, one connection in each of {threads} worker threads",
            sum(t.opened for t in tasks),
            (time.perf_counter() - start) * 1000,
        )

    def check_capacity(self, workers: int) -> list[str]:
        """Planned connections per PostgreSQL alias (``workers`` x the plan's size) against
        what the server allows (``max_connections`` less the superuser reserve and the
        connections other clients hold now), on one short connection per alias.

        Returns one note per alias; raises (exit 8) when the plan cannot fit, so start-up
        fails with the numbers instead of a prewarm that hits "too many clients"."""
        if not self.settings.prewarm or importlib.util.find_spec("psycopg") is None:
            return []
        import psycopg
        from django.db import connections

        notes = []
        for plan in self.plans:
            wrapper = connections[plan.alias]
            if plan.mode == "none" or not _is_postgresql(wrapper.settings_dict):
                continue
            where = describe_database(wrapper.settings_dict)
            planned = workers * plan.max_size
            try:
                params = wrapper.get_connection_params()
                with psycopg.connect(**params, autocommit=True) as conn:
                    row = conn.execute(
                        "SELECT current_setting('max_connections')::int, "
                        "current_setting('superuser_reserved_connections')::int, "
                        "(SELECT count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend')::int - 1"
                    ).fetchone()
            except psycopg.Error as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise LagscopeError("database", f"{where}: {detail}", ExitCode.CONNECT) from exc
            assert row is not None
            allowed, others = int(row[0]) - int(row[1]), int(row[2])
            if planned > allowed - others:
                raise LagscopeError(
                    "database",
                    f"{where}: {workers} worker(s) x {plan.max_size} = {planned} connections "
                    f"planned for {plan.alias!r}, but PostgreSQL allows {allowed} "
                    f"(max_connections less the superuser reserve) and {others} are in use "
                    "by other clients; lower --workers / --threads or raise max_connections",
                    ExitCode.ENVIRONMENT,
                )
            notes.append(
                f"database {plan.alias}: {planned} connections planned ({workers} worker(s) "
                f"x {plan.max_size}); PostgreSQL allows {allowed}, {others} in use by others"
            )
        return notes

    def start_guard(self) -> None:
        self._guard = PoolGuard([pool for _, pool in self._pools()]).start()

    def shutdown(self) -> None:
        """Stop the guard and close the pools (their workers are threads that must stop)."""
        from django.db import connections

        if self._guard is not None:
            self._guard.stop()
        for alias in connections:
            conn = connections[alias]
            close_pool = getattr(conn, "close_pool", None)
            if close_pool is not None and conn.settings_dict.get("OPTIONS", {}).get("pool"):
                with contextlib.suppress(Exception):  # best effort at exit
                    close_pool()

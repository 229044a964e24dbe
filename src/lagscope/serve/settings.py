"""The one settings table of ``lagscope serve``: every knob, its default, its unit and why.

Pure: no sockets, no Django. The CLI flags, ``--print-config`` and docs/serve.md all come
from :data:`SETTINGS`. A default is either a constant or a function of the :class:`Host`
facts (CPU count, platform, listener count), so it can be tested for any machine.
:func:`resolve` merges user overrides over the defaults into a frozen :class:`ServeConfig`
that remembers, for each value, whether it was chosen or given and why.

The database half (:func:`plan_database`, :func:`apply_database_plan`) decides how Django
keeps its connections warm: the native psycopg pool on Django >= 5.1 with psycopg 3, else
persistent connections with health checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "SETTINGS",
    "DbPlan",
    "Host",
    "ServeConfig",
    "Setting",
    "apply_database_plan",
    "plan_database",
    "render_config",
    "resolve",
    "select_limit",
]


@dataclass(frozen=True)
class Host:
    """The facts the defaults are derived from."""

    cpu_count: int
    platform: str  # sys.platform

    @classmethod
    def current(cls) -> Host:
        return cls(cpu_count=os.cpu_count() or 1, platform=sys.platform)


def select_limit(platform: str) -> int:
    """How many sockets waitress's select() loop can watch.

    Windows' select() takes at most 512 sockets (CPython's FD_SETSIZE there). Elsewhere
    select() cannot watch a file descriptor numbered 1024 or more, and every open file of
    the process (database sockets, SQLite files, logs) uses up numbers below it.
    """
    return 512 if platform.startswith("win") else 1024


Value = Any
Default = Callable[["_Partial", Host], tuple[Value, str]]


@dataclass(frozen=True)
class Setting:
    """One row of the table. ``default`` returns (value, why) from the settings resolved so
    far (rows are resolved in order, so a row may depend on the rows above it)."""

    name: str
    kind: Literal["int", "float", "bool", "str", "choice"]
    unit: str
    help: str
    default: Default
    choices: tuple[str, ...] = ()
    waitress_only: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class _Partial(dict[str, Value]):
    """The values resolved so far, by name."""


def _const(value: Value, why: str) -> Default:
    return lambda _p, _h: (value, why)


def _threads(p: _Partial, h: Host) -> tuple[Value, str]:
    by_cpu = min(max(h.cpu_count, 2), 8)
    budget = int(p["db_connections"])
    value = min(by_cpu, budget)
    why = (
        f"{h.cpu_count} CPU(s) -> {by_cpu}: a CPU-bound Django view holds the GIL, so threads "
        "beyond the CPU count cost throughput (threads=4 gave half the req/s of threads=1 on "
        "2 vCPU), while at least 2 keeps one slow request from blocking everyone; capped at 8"
    )
    if value < by_cpu:
        why += f"; cut to db_connections={budget}, since each thread holds one connection"
    return value, why


def _connection_limit(p: _Partial, h: Host) -> tuple[Value, str]:
    cap = select_limit(h.platform)
    listeners = 2 if p["dual_stack"] and p["host"] == "localhost" else 1
    # Waitress counts its own map entries (each listener and its trigger) against the
    # limit (waitress #301). On Unix, select() cares about fd *numbers*, so every other file
    # the process holds (database sockets, SQLite files, logs, stdio) must fit below the cap.
    if h.platform.startswith("win"):
        reserved = 12
        how = "Windows select() watches at most 512 sockets; 12 kept spare"
    else:
        reserved = 32 + int(p["db_connections"])
        how = (
            "select() cannot watch fd numbers >= 1024; kept 32 + db_connections below it "
            "for the process's other files and database sockets"
        )
    value = cap - reserved
    why = (
        f"{how} -> {value}; waitress's {2 * listeners} own sockets count too, so "
        f"{value - 2 * listeners} client connections; above it new clients wait in the backlog"
    )
    return value, why


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "server",
        "choice",
        "",
        "WSGI server. waitress: pure Python, runs on Windows. granian: the `granian` extra.",
        _const("waitress", "pure Python, every platform, no extra needed"),
        choices=("waitress", "granian"),
    ),
    Setting(
        "host",
        "str",
        "",
        "Address to listen on. `localhost` listens on 127.0.0.1 and ::1 (see dual_stack).",
        _const("localhost", "loopback only unless told otherwise"),
    ),
    Setting(
        "port",
        "int",
        "",
        "TCP port; 0 picks a free one (printed at start-up).",
        _const(8000, "Django's usual development port"),
        minimum=0,
        maximum=65535,
    ),
    Setting(
        "dual_stack",
        "bool",
        "",
        "With host `localhost`, listen on both 127.0.0.1 and ::1 on the same port.",
        _const(
            True,
            "`localhost` resolves to ::1 first on Windows; a server on 127.0.0.1 only makes "
            "Chrome wait 300 ms and Python clients ~2 s per new connection",
        ),
    ),
    Setting(
        "db_connections",
        "int",
        "connections",
        "Database connection budget of this server (per alias); threads never exceed it.",
        _const(
            16,
            "PostgreSQL's default max_connections is 100; 16 leaves room for several "
            "servers, migrations and admin sessions",
        ),
        minimum=1,
    ),
    Setting(
        "threads",
        "int",
        "threads",
        "Worker threads running the app (waitress) / blocking threads (granian).",
        _threads,
        minimum=1,
    ),
    Setting(
        "connection_limit",
        "int",
        "sockets",
        "Open sockets waitress will hold (idle keep-alive ones included).",
        _connection_limit,
        waitress_only=True,
        minimum=8,
    ),
    Setting(
        "channel_timeout",
        "float",
        "s",
        "Close a keep-alive connection idle this long.",
        _const(
            310.0,
            "just above browsers' 300 s idle timeout, so the client drops first and never "
            "sends on a socket the server is closing; 3600 (the seed's) holds dead slots an hour",
        ),
        waitress_only=True,
        minimum=1,
    ),
    Setting(
        "cleanup_interval",
        "float",
        "s",
        "How often idle connections are checked; one closes between channel_timeout and "
        "channel_timeout + cleanup_interval.",
        _const(30.0, "waitress's default; the check is cheap but 30 s granularity is enough"),
        waitress_only=True,
        minimum=1,
    ),
    Setting(
        "backlog",
        "int",
        "connections",
        "Kernel accept queue: where new clients wait while connection_limit is reached.",
        _const(1024, "waitress's default; Linux caps it at net.core.somaxconn (4096)"),
        minimum=1,
    ),
    Setting(
        "tcp_nodelay",
        "bool",
        "",
        "Set TCP_NODELAY on accepted sockets.",
        _const(
            True,
            "without it a response written in two pieces stalls ~40 ms (Linux) to ~200 ms "
            "(Windows) on reused connections (Nagle + delayed ACK)",
        ),
        waitress_only=True,
    ),
    Setting(
        "sized_body_max_bytes",
        "int",
        "bytes",
        "Buffer unsized, non-streaming bodies up to this size to send Content-Length.",
        _const(
            8 * 1024 * 1024,
            "waitress closes the connection after any response without Content-Length; "
            "buffering a bounded body keeps it alive (streaming responses are left alone)",
        ),
        minimum=0,
    ),
    Setting(
        "prewarm",
        "bool",
        "",
        "Open the database connections before serving, so no request pays a connect.",
        _const(True, "a PostgreSQL connect is 5-12 ms locally, 100 ms+ with GSSAPI/SSL/AV"),
    ),
    Setting(
        "db_pool",
        "bool",
        "",
        "Use Django's native psycopg pool where available (else persistent connections).",
        _const(
            True,
            "Django >= 5.1 with psycopg 3: connections live in the pool, opened by its "
            "workers, checked before use; --no-db-pool keeps one persistent connection per "
            "thread instead (what older stacks get)",
        ),
    ),
    Setting(
        "prewarm_timeout",
        "float",
        "s",
        "Give up starting if the database cannot be reached within this time.",
        _const(30.0, "long enough for a database that is still starting"),
        minimum=0.1,
    ),
    Setting(
        "health_checks",
        "bool",
        "",
        "Check a reused database connection before a request uses it.",
        _const(
            True,
            "a dropped persistent connection otherwise fails one request per thread with "
            "HTTP 500 (measured: 3 of 8 requests after PostgreSQL killed idle sessions)",
        ),
    ),
    Setting(
        "shutdown_timeout",
        "float",
        "s",
        "On Ctrl+C/SIGTERM, how long in-flight requests get to finish.",
        _const(30.0, "systemd and Docker wait 10-90 s before SIGKILL"),
        minimum=0,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class ServeConfig:
    """The settings in force. ``why[name]`` explains each value; ``given`` names the ones
    the user set."""

    values: Mapping[str, Value]
    why: Mapping[str, str]
    given: frozenset[str] = field(default_factory=frozenset)
    host_facts: Host = field(default_factory=Host.current)

    def __getattr__(self, name: str) -> Value:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def listen_hosts(self) -> tuple[str, ...]:
        if self.values["host"] == "localhost" and self.values["dual_stack"]:
            return ("127.0.0.1", "::1")
        return (str(self.values["host"]),)

    def waitress_adjustments(self) -> dict[str, Any]:
        """Keyword arguments for ``waitress.create_server`` (besides ``sockets``).

        TCP_NODELAY is not an argument there: waitress sets it on every accepted socket
        through ``Adjustments.socket_options``; the launcher clears that for --no-tcp-nodelay.
        """
        return {
            "threads": self.values["threads"],
            "connection_limit": self.values["connection_limit"],
            "channel_timeout": self.values["channel_timeout"],
            "cleanup_interval": self.values["cleanup_interval"],
            "backlog": self.values["backlog"],
            "ident": "lagscope",
            # The shutdown drain and Ctrl+C on Windows both wait for the loop to wake up.
            "asyncore_loop_timeout": 1,
        }


def _check(setting: Setting, value: Value) -> Value:
    if setting.kind == "choice" and value not in setting.choices:
        raise LagscopeError(
            "config",
            f"{setting.flag} must be one of {', '.join(setting.choices)}, not {value!r}",
            ExitCode.USAGE,
        )
    if setting.kind in ("int", "float"):
        try:
            value = int(value) if setting.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise LagscopeError(
                "config", f"{setting.flag} needs a number, not {value!r}", ExitCode.USAGE
            ) from None
        if setting.minimum is not None and value < setting.minimum:
            raise LagscopeError(
                "config", f"{setting.flag} must be at least {setting.minimum:g}", ExitCode.USAGE
            )
        if setting.maximum is not None and value > setting.maximum:
            raise LagscopeError(
                "config", f"{setting.flag} must be at most {setting.maximum:g}", ExitCode.USAGE
            )
    if setting.kind == "bool" and not isinstance(value, bool):
        raise LagscopeError("config", f"{setting.flag} must be true or false", ExitCode.USAGE)
    return value


def resolve(overrides: Mapping[str, Value], host: Host) -> ServeConfig:
    """Defaults from the table for ``host``, with ``overrides`` (None = not given) on top."""
    unknown = set(overrides) - set(_BY_NAME)
    if unknown:
        raise LagscopeError(
            "config", f"unknown serve setting(s): {', '.join(sorted(unknown))}", ExitCode.USAGE
        )
    partial = _Partial()
    why: dict[str, str] = {}
    given: set[str] = set()
    for setting in SETTINGS:
        if overrides.get(setting.name) is not None:
            partial[setting.name] = _check(setting, overrides[setting.name])
            why[setting.name] = "given"
            given.add(setting.name)
        else:
            value, reason = setting.default(partial, host)
            partial[setting.name] = value
            why[setting.name] = reason
    cap = select_limit(host.platform)
    if partial["connection_limit"] > cap:
        raise LagscopeError(
            "config",
            f"--connection-limit {partial['connection_limit']} is above what select() can "
            f"watch on this platform ({cap})",
            ExitCode.USAGE,
        )
    if partial["threads"] > partial["db_connections"]:
        raise LagscopeError(
            "config",
            f"--threads {partial['threads']} exceeds --db-connections "
            f"{partial['db_connections']}: each thread may hold a database connection",
            ExitCode.USAGE,
        )
    return ServeConfig(values=dict(partial), why=why, given=frozenset(given), host_facts=host)


def render_config(config: ServeConfig) -> str:
    """``--print-config``: every setting, its value, and where it came from."""
    server = config.values["server"]
    lines = [
        f"# lagscope serve settings ({config.host_facts.cpu_count} CPU(s), "
        f"{config.host_facts.platform})"
    ]
    for setting in SETTINGS:
        value = config.values[setting.name]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        unit = f" {setting.unit}" if setting.unit else ""
        note = "" if not (setting.waitress_only and server != "waitress") else " [waitress only]"
        lines.append(f"{setting.name} = {shown}{unit}{note}")
        source = "given on the command line" if setting.name in config.given else "default"
        lines.append(f"    {source}: {config.why[setting.name]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- database plan


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
    is_pg = engine.endswith("postgresql") or engine.endswith("postgis")
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
        # A request waits at most this long for a free connection (e.g. while PostgreSQL
        # restarts) before failing.
        pool.setdefault("timeout", 10.0)
        options["pool"] = pool
        # The pool owns connection lifetime; Django refuses a pool with persistent conns.
        settings_dict["CONN_MAX_AGE"] = 0
    elif plan.mode == "persistent":
        settings_dict["CONN_MAX_AGE"] = None

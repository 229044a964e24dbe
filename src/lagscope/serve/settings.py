"""The one settings table of ``lagscope serve``: every knob, its default, its unit and why.

Pure: no sockets, no Django. The CLI flags, ``--print-config`` and the table in
docs/serve.md all come from :class:`ServeConfig`'s rows (:mod:`lagscope.settings_table`).
A default is either a constant or a function of the :class:`Host` facts (CPU count,
platform), so it can be tested for any machine. :func:`resolve` merges user overrides over
the defaults into a frozen :class:`ServeConfig` that remembers, for each value, whether it
was chosen or given and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from lagscope.addresses import is_localhost_name, is_loopback_literal
from lagscope.settings_table import (
    JUST_ABOVE_BROWSER_IDLE_S,
    Host,
    Row,
    SettingsError,
    Sofar,
    build,
    derived,
    markdown,
    rows,
    setting,
    validate,
)

__all__ = [
    "SETTINGS",
    "Host",
    "ServeConfig",
    "config_as_dict",
    "config_from_dict",
    "docs_table",
    "render_config",
    "resolve",
    "select_limit",
]


def select_limit(platform: str) -> int:
    """How many sockets waitress's select() loop can watch.

    Windows' select() takes at most 512 sockets (CPython's FD_SETSIZE there). Elsewhere
    select() cannot watch a file descriptor numbered 1024 or more, and every open file of
    the process (database sockets, SQLite files, logs) uses up numbers below it.
    """
    return 512 if platform.startswith("win") else 1024


# More workers than this rarely pays on the small services serve is for, and each one
# holds its own threads' database connections and its own copy of the app.
MAX_DEFAULT_WORKERS = 4


def _workers(p: Sofar, h: Host) -> tuple[int, str]:
    host = p.str("host")
    if is_localhost_name(host) or is_loopback_literal(host):
        return 1, (
            f"{host} is loopback only: one developer's clients, where a second process gains "
            "nothing at one request at a time (docs/performance.md) and doubles memory and "
            "database connections"
        )
    by_cpu = min(max(h.cpu_count, 1), MAX_DEFAULT_WORKERS)
    value = min(by_cpu, p.int("db_connections"))
    why = (
        f"{host} serves other machines: one process per CPU ({h.cpu_count} -> {by_cpu}, capped "
        f"at {MAX_DEFAULT_WORKERS}), since the GIL caps a process at one core: on 2 vCPUs "
        "--workers 2 served 1.5-2.3x the req/s of 1 at 8 concurrent clients "
        "(docs/performance.md)"
    )
    if value < by_cpu:
        why += f"; cut to db_connections = {value}, since each worker holds at least one"
    return value, why


# The measured part is docs/performance.md's (serving the reference app's /api/items/ on
# 2 vCPUs); the rest is a rule of thumb and says so.
_THREADS_WHY = (
    "a CPU-bound view holds the GIL, so threads beyond the CPUs add no req/s (on 2 vCPUs, "
    "threads=1, 2, 4 and 8 all served within this machine's ±10 % noise of each other: "
    "docs/performance.md); at least 2 keeps one slow request from blocking everyone "
    "(a rule of thumb)"
)


def _threads(p: Sofar, h: Host) -> tuple[int, str]:
    by_cpu = min(max(h.cpu_count, 2), 8)
    workers = p.int("workers")
    budget = max(1, p.int("db_connections") // workers)
    value = min(by_cpu, budget)
    why = f"{h.cpu_count} CPU(s) -> {by_cpu}: {_THREADS_WHY}; capped at 8"
    if value < by_cpu:
        why += (
            f"; cut to db_connections / workers = {budget}, since each thread holds one connection"
        )
    return value, why


def _connection_limit(p: Sofar, h: Host) -> tuple[int, str]:
    cap = select_limit(h.platform)
    listeners = 2 if p.bool("dual_stack") and p.str("host") == "localhost" else 1
    # Waitress counts its own map entries (each listener and its trigger) against the
    # limit (waitress #301). On Unix, select() cares about fd *numbers*, so every other file
    # the process holds (database sockets, SQLite files, logs, stdio) must fit below the cap.
    if h.platform.startswith("win"):
        reserved = 12
        how = "Windows select() watches at most 512 sockets; 12 kept spare"
    else:
        reserved = 32 + p.int("db_connections")
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


_WAITRESS = {"only": "waitress"}

# The X-Forwarded-* headers honoured from --trusted-proxy; nginx-config sends these.
TRUSTED_PROXY_HEADERS = (
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
)


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """The settings in force, one typed field per row. ``why[name]`` explains each value;
    ``given`` names the ones the user set."""

    server: Literal["waitress", "granian"] = setting(
        "waitress",
        help="WSGI server. waitress: pure Python, runs on Windows. granian: the `granian` extra.",
        why="pure Python, every platform, no extra needed",
    )
    host: str = setting(
        "localhost",
        help="Address to listen on. `localhost` listens on 127.0.0.1 and ::1 (see dual_stack).",
        why="loopback only unless told otherwise",
    )
    port: int = setting(
        8000,
        help="TCP port; 0 picks a free one (printed at start-up).",
        why="Django's usual development port",
        minimum=0,
        maximum=65535,
    )
    https: bool = setting(
        False,
        help="Serve HTTPS with ALPN h2 and http/1.1 (HTTP/2: one connection per browser). "
        "Needs granian, chosen automatically when installed; the certificate is the local "
        "CA's (lagscope cert) unless --tls-cert-file is given.",
        why="a browser opens up to 6 HTTP/1.1 connections per origin and only one over "
        "HTTP/2, which browsers speak only over TLS; off, since a browser warns until "
        "`lagscope cert install` has run",
    )
    tls_cert_file: str = setting(
        "",
        help="--https: certificate chain (PEM) to serve instead of the local CA's localhost one.",
        why="the local CA's certificate covers localhost, 127.0.0.1 and ::1",
        shown="the local CA's (lagscope cert)",
    )
    tls_key_file: str = setting(
        "",
        help="--https: private key (PEM) of --tls-cert-file.",
        why="the local CA's key stays in the per-user data directory",
        shown="the local CA's (lagscope cert)",
    )
    dual_stack: bool = setting(
        True,
        help="With host `localhost`, listen on both 127.0.0.1 and ::1 on the same port.",
        why="`localhost` resolves to ::1 first on Windows; a server on 127.0.0.1 only makes "
        "Chrome wait 300 ms and Python clients ~2 s per new connection",
    )
    db_connections: int = setting(
        16,
        unit="connections",
        help="Database connection budget of this server (per alias, all workers together); "
        "workers x threads never exceed it.",
        why="PostgreSQL's default max_connections is 100; 16 leaves room for several "
        "servers, migrations and admin sessions",
        minimum=1,
        maximum=10000,
    )
    workers: int = derived(
        _workers,
        shown="1 on a loopback address; else CPUs, clamped to 1…4, ≤ db-connections",
        unit="processes",
        help="Server processes sharing the listening sockets, each with its own threads and "
        "database connections (prewarmed before the readiness line). A dead one is restarted.",
        why="the GIL caps a process at one core: on 2 vCPUs --workers 2 served 1.5-2.3x the "
        "req/s of 1 at 8 concurrent clients and the same at 1 (docs/performance.md); a "
        "loopback-only server is one developer's, so one process keeps memory and database "
        "connections lowest",
        minimum=1,
        maximum=64,
    )
    trusted_proxy: str = setting(
        "",
        help="Honour X-Forwarded-For/-Proto/-Host/-Port only from this address (the nginx in "
        "front); from any other peer they are removed. Empty: never honoured.",
        why="a forwarded header is a claim any client can make; only the proxy's own "
        "address may make it",
        shown="none",
    )
    threads: int = derived(
        _threads,
        shown="CPUs, clamped to 2…8, ≤ db-connections",
        unit="threads",
        help="Worker threads running the app (waitress) / blocking threads (granian).",
        why=f"{_THREADS_WHY}; each thread may hold one database connection",
        minimum=1,
        maximum=1024,
    )
    connection_limit: int = derived(
        _connection_limit,
        shown="976 (Linux/macOS), 500 (Windows)",
        unit="sockets",
        help="Open sockets waitress will hold (idle keep-alive ones included).",
        why="waitress uses `select()`: 512 sockets on Windows, fd numbers < 1024 elsewhere "
        "(minus 32 + db-connections for the process's other files); waitress's own 2 "
        "sockets per listener count against it",
        minimum=8,
        extra=_WAITRESS,
    )
    channel_timeout: float = setting(
        float(JUST_ABOVE_BROWSER_IDLE_S),
        unit="s",
        help="Close a keep-alive connection idle this long.",
        why="just above browsers' 300 s idle timeout, so the client drops first and never "
        "sends on a socket the server is closing; 3600 holds dead slots an hour",
        minimum=1,
        extra=_WAITRESS,
    )
    cleanup_interval: float = setting(
        30.0,
        unit="s",
        help="How often idle connections are checked; one closes between channel_timeout and "
        "channel_timeout + cleanup_interval.",
        why="waitress's default; the check is cheap but 30 s granularity is enough",
        minimum=1,
        extra=_WAITRESS,
    )
    backlog: int = setting(
        1024,
        unit="connections",
        help="Kernel accept queue: where new clients wait while connection_limit is reached.",
        why="waitress's default; Linux caps it at net.core.somaxconn (4096)",
        minimum=1,
        maximum=65535,
    )
    tcp_nodelay: bool = setting(
        True,
        help="Set TCP_NODELAY on accepted sockets.",
        why="without it a response written in two pieces stalls ~40 ms (Linux) to ~200 ms "
        "(Windows) on reused connections (Nagle + delayed ACK)",
        extra=_WAITRESS,
    )
    sized_body_max_bytes: int = setting(
        8 * 1024 * 1024,
        unit="bytes",
        shown="8 MiB",
        help="Buffer unsized, non-streaming bodies up to this size to send Content-Length.",
        why="waitress closes the connection after any response without Content-Length; "
        "buffering a bounded body keeps it alive (streaming responses are left alone)",
        minimum=0,
    )
    prewarm: bool = setting(
        True,
        help="Open the database connections before serving, so no request pays a connect.",
        why="a PostgreSQL connect is 5-12 ms locally, 100 ms+ with GSSAPI/SSL/AV",
    )
    db_pool: bool = setting(
        True,
        help="Use Django's native psycopg pool where available (else persistent connections).",
        why="Django >= 5.1 with psycopg 3: connections live in the pool, opened by its "
        "workers, checked before use; --no-db-pool keeps one persistent connection per "
        "thread instead (what older stacks get)",
    )
    prewarm_timeout: float = setting(
        30.0,
        unit="s",
        help="Give up starting if the database cannot be reached within this time.",
        why="long enough for a database that is still starting",
        minimum=0.1,
        maximum=3600,
    )
    health_checks: bool = setting(
        True,
        help="Check a reused database connection before a request uses it.",
        why="without it a persistent connection the database dropped fails the next "
        "request of each thread that held one with HTTP 500; the check pings only reused "
        "connections",
    )
    shutdown_timeout: float = setting(
        30.0,
        unit="s",
        help="On Ctrl+C/SIGTERM, how long in-flight requests get to finish.",
        why="systemd and Docker wait 10-90 s before SIGKILL",
        minimum=0,
        maximum=3600,
    )

    why: Mapping[str, str] = field(default_factory=dict, compare=False)
    given: frozenset[str] = frozenset()
    host_facts: Host = field(default_factory=Host.current)

    def __post_init__(self) -> None:
        validate(self)
        cap = select_limit(self.host_facts.platform)
        if self.connection_limit > cap:
            raise SettingsError(
                f"--connection-limit {self.connection_limit} is above what select() can "
                f"watch on this platform ({cap})"
            )
        if self.workers * self.threads > self.db_connections:
            raise SettingsError(
                f"--workers {self.workers} x --threads {self.threads} = "
                f"{self.workers * self.threads} exceeds --db-connections "
                f"{self.db_connections}: each thread may hold a database connection"
                if self.workers > 1
                else f"--threads {self.threads} exceeds --db-connections "
                f"{self.db_connections}: each thread may hold a database connection"
            )

    @property
    def values(self) -> dict[str, bool | int | float | str | None]:
        """The settings by name (what a child process gets to rebuild this config)."""
        return {row.name: getattr(self, row.name) for row in rows(ServeConfig)}

    @property
    def listen_hosts(self) -> tuple[str, ...]:
        if self.host == "localhost" and self.dual_stack:
            return ("127.0.0.1", "::1")
        return (self.host,)

    def waitress_adjustments(self, *, proxy_headers: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``waitress.create_server`` (besides ``sockets``).

        ``proxy_headers=False``: waitress leaves forwarded headers alone, because the app
        is wrapped in waitress's proxy-header middleware itself (behind the reload front,
        where the TCP peer is the front and the client's address comes with the request).

        TCP_NODELAY is not an argument there: waitress sets it on every accepted socket
        through ``Adjustments.socket_options``; ``server.serve_on`` clears that for
        --no-tcp-nodelay.
        """
        adjustments: dict[str, Any] = {
            "threads": self.threads,
            "connection_limit": self.connection_limit,
            "channel_timeout": self.channel_timeout,
            "cleanup_interval": self.cleanup_interval,
            "backlog": self.backlog,
            "ident": "lagscope",
            # The shutdown drain and Ctrl+C on Windows both wait for the loop to wake up.
            "asyncore_loop_timeout": 1,
            # Forwarded headers from anyone but the trusted proxy are dropped, not trusted.
            "clear_untrusted_proxy_headers": proxy_headers,
        }
        if self.trusted_proxy and proxy_headers:
            adjustments.update(
                trusted_proxy=self.trusted_proxy,
                trusted_proxy_count=1,
                trusted_proxy_headers=set(TRUSTED_PROXY_HEADERS),
            )
        return adjustments

    @property
    def connections_per_alias(self) -> int:
        """Database connections per alias when every thread of every worker holds one."""
        return self.workers * self.threads


def resolve(
    overrides: Mapping[str, object], host: Host, granian_installed: bool | None = None
) -> ServeConfig:
    """Defaults from the table for ``host``, with ``overrides`` (None = not given) on top.

    Strings are read as the row's type (overrides may come from JSON or the environment).
    ``--https`` without ``--server`` picks granian when it is installed (``granian_installed``,
    default: importable here), since waitress has no TLS; with waitress it is refused.
    """
    config, built = build(
        ServeConfig,
        overrides,
        host=host,
        parse_strings=True,
        what="serve setting",
        host_facts=host,
    )
    config = replace(config, why=dict(built.why), given=built.given)
    return _https_server(config, granian_installed)


def _https_server(config: ServeConfig, granian_installed: bool | None) -> ServeConfig:
    from lagscope.cert import check_tls_files

    check_tls_files(config.https, config.tls_cert_file, config.tls_key_file)
    if not config.https or config.server == "granian":
        return config
    if granian_installed is None:
        import importlib.util

        granian_installed = importlib.util.find_spec("granian") is not None
    advice = (
        "waitress has no TLS. Serve HTTPS with granian (pip install 'lagscope[granian]', "
        "then --server granian), or keep waitress behind nginx: lagscope nginx-config --https"
    )
    if "server" in config.given or not granian_installed:
        raise SettingsError(f"--https: {advice}")
    why = dict(config.why)
    why["server"] = "--https: waitress has no TLS, and granian (installed) speaks TLS with HTTP/2"
    return replace(config, server="granian", why=why)


def config_as_dict(config: ServeConfig) -> dict[str, Any]:
    """``config`` as plain JSON-ready data, values, reasons and host facts included: what a
    process that cannot be handed the object (granian's workers) rebuilds it from."""
    return {
        "values": config.values,
        "why": dict(config.why),
        "given": sorted(config.given),
        "host": asdict(config.host_facts),
    }


def config_from_dict(raw: Mapping[str, Any]) -> ServeConfig:
    """The config :func:`config_as_dict` gave, as it was (validated again, not re-resolved:
    the defaults that depend on the machine stay the ones the parent chose)."""
    host = raw["host"]
    facts = Host(
        cpu_count=int(host["cpu_count"]),
        platform=str(host["platform"]),
        django_version=_version_pair(host["django_version"]),
        psycopg_version=_version_pair(host["psycopg_version"]),
    )
    return ServeConfig(
        **raw["values"],
        why={str(k): str(v) for k, v in raw["why"].items()},
        given=frozenset(str(name) for name in raw["given"]),
        host_facts=facts,
    )


def _version_pair(value: list[int] | None) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def render_config(config: ServeConfig) -> str:
    """``--print-config``: every setting, its value, and where it came from."""
    lines = [
        f"# lagscope serve settings ({config.host_facts.cpu_count} CPU(s), "
        f"{config.host_facts.platform})",
        f"# database connections per alias: {config.workers} worker(s) x {config.threads} "
        f"thread(s) = {config.connections_per_alias} (pool max_size {config.threads} per "
        f"worker), within --db-connections {config.db_connections}; PostgreSQL's "
        "max_connections must cover it plus every other client",
    ]
    for row in rows(ServeConfig):
        value = getattr(config, row.name)
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        unit = f" {row.spec.unit}" if row.spec.unit else ""
        only = row.spec.extra.get("only")
        note = f" [{only} only]" if only and only != config.server else ""
        lines.append(f"{row.name} = {shown}{unit}{note}")
        source = "given on the command line" if row.name in config.given else "default"
        lines.append(f"    {source}: {config.why.get(row.name, row.spec.why)}")
    return "\n".join(lines) + "\n"


def docs_table() -> str:
    """The settings table of docs/serve.md."""
    return markdown(ServeConfig)


# Every row, in table order (the generators' view of :class:`ServeConfig`).
SETTINGS: tuple[Row, ...] = rows(ServeConfig)

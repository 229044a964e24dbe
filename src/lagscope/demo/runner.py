"""The demo's I/O shell: a database, three versions behind the tax, a visit each, cleanup.

:func:`run_demo` owns the order of steps and their cleanup. Everything it starts (a
throwaway PostgreSQL cluster, fault proxies, app servers as child processes, a temp dir)
is registered on one :class:`contextlib.ExitStack` the moment it exists, so an error or a
Ctrl+C at any step unwinds all of it: children stopped, proxies closed, the cluster stopped
and its directory deleted. Progress goes through a callback, one line per step. Diagnose
and the clocks are ordinary parameters.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib.util
import os
import platform
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lagscope import dsn, redact
from lagscope.browser.driver import BrowserSession
from lagscope.demo.browse import LOAD_TIMEOUT_S, browse, find_browser_for_demo
from lagscope.demo.child import READY_PREFIX, child_command
from lagscope.demo.diag import DiagnoseFn
from lagscope.demo.edit import EditProbe, editable_templates
from lagscope.demo.model import DemoReport, EditFigures, Sample, VersionResult, summarize
from lagscope.demo.nginx import NginxProcess
from lagscope.demo.pgcluster import PgCluster, PgUnavailable, find_pg_bin
from lagscope.demo.procs import Child, ChildFailed
from lagscope.demo.versions import VERSIONS, VersionSpec
from lagscope.demo.visit import run_visit, visit_plan
from lagscope.dsn import Dsn, conninfo
from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject import ConnectionRecord, ConnectionTax, Injector, Route
from lagscope.netutil import set_listen_options
from lagscope.refapp.config import TEMPLATES_ENV
from lagscope.settings_table import SettingsError, markdown, setting, validate

__all__ = ["DemoOptions", "Progress", "docs_table", "run_demo"]

Progress = Callable[[str], None]
Clock = Callable[[], float]

TAX_MAX_MS = 10_000.0
# Warm requests per version after the first ten, and the browser's parallel connections.
WARM_REQUESTS = 30
WARM_REQUESTS_QUICK = 6
PARALLEL_CONNECTIONS = 3
# A version that is not serving within this time is broken, not slow.
READY_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
# Diagnose bounds its own run (--diagnose-max-time); this much more only guards against a
# hung thread.
DIAGNOSE_GRACE_S = 30.0
APP_NAME_PREFIX = "lagscope-demo-"
# lagscope serve's --shutdown-timeout here: the visits are over when it is stopped.
SERVE_SHUTDOWN_S = 2.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``lagscope demo`` runs: one row per flag (the click options and docs/demo.md's
    table come from these rows)."""

    tax_ms: float = setting(
        300.0,
        flag="--tax",
        unit="ms",
        help="Delay on every new connection, app and database side (0 = control).",
        why="the size reported for security software taxing each connection (300-400 ms)",
        minimum=0,
        maximum=TAX_MAX_MS,
    )
    quick: bool = setting(
        False,
        help=(
            f"{WARM_REQUESTS_QUICK} warm requests instead of {WARM_REQUESTS}; diagnose's "
            "cold vs warm with 6 + 6 requests instead of 9 + 10."
        ),
    )
    database: str | None = setting(
        None,
        help="postgresql://user[:pw]@host:port/db to use, or 'sqlite'.",
        shown="a throwaway PostgreSQL cluster when the server binaries are found, else SQLite",
    )
    nginx: bool = setting(
        False,
        help="Put nginx in front of each version (before: a tutorial config without upstream "
        "keep-alive; the others: lagscope nginx-config's).",
    )
    nginx_bin: str | None = setting(
        None,
        help="The nginx binary for --nginx.",
        shown="PATH, then /usr/sbin/nginx, /usr/local/sbin/nginx",
    )
    keep: bool = setting(
        False,
        help="Leave the versions running after the report and print their URLs; Ctrl+C "
        "stops them all.",
    )
    port_base: int = setting(
        0,
        help="Serve before/hand-tuned/lagscope on ports N, N+1, N+2 (0: free ports).",
        why="free ports never collide; a fixed base gives URLs to open in a browser",
        minimum=0,
        maximum=65535 - len(VERSIONS),
    )
    log_path: str | None = setting(
        None,
        flag="--log",
        help="Append the tax proxies' per-connection ground truth here (JSON lines).",
        shown="none",
    )
    diagnose: bool = setting(
        True, help="Run diagnose on each version (--no-diagnose: measure only)."
    )
    diagnose_timeout_s: float = setting(
        30.0,
        flag="--diagnose-timeout",
        unit="s",
        help="Timeout of each phase of each of diagnose's requests.",
        why="a cold request behind the tax pays it on both hops and still answers well within it",
        above=0,
        maximum=3600,
    )
    diagnose_max_time_s: float = setting(
        60.0,
        flag="--diagnose-max-time",
        unit="s",
        help="Bound on each version's whole diagnose run.",
        why="diagnose's own default bound",
        above=0,
        maximum=3600,
    )
    browser: bool = setting(
        True,
        help="Load each version's pages in a real browser after its visit (Chromium, Chrome or "
        "Edge and the browser extra, when found).",
    )
    browser_path: str | None = setting(
        None,
        help="The Chromium-based browser that loads each version's pages.",
        shown="Chromium/Chrome on PATH, Chrome/Edge on Windows and macOS",
    )
    edit: bool = setting(
        True,
        help="Time each version's first page after a code edit (a template the page renders): "
        "before and hand-tuned restart, lagscope runs serve --reload.",
        shown="on (off with --quick unless --edit is given)",
    )
    https: bool = setting(
        True,
        help="Serve 'lagscope' over HTTPS with HTTP/2 (serve --https on granian; with --nginx, "
        "nginx's TLS listener) with a CA of this run's own, trusted by the demo's browser only.",
        shown="on when the demo's browser runs (HTTP/2 shows in a page's load)",
    )
    # Not a row: whether --https was given (on even without a browser, an error without
    # granian or cryptography) or is the default (on only when the browser runs).
    https_asked: bool = False
    # Not a row either: whether --edit was given (--quick leaves the row out otherwise).
    edit_asked: bool = False

    def __post_init__(self) -> None:
        validate(self)
        if self.port_base and self.port_base < 1024:
            raise SettingsError(
                f"--port-base must be 0 (free ports) or 1024..{65535 - len(VERSIONS)}"
            )
        _ = self.database_conn  # bad input fails here, before anything starts

    @functools.cached_property
    def database_conn(self) -> Dsn | None:
        """``--database`` parsed (once), or None for the throwaway cluster or SQLite."""
        if self.database is None or self.database.lower() == "sqlite":
            return None
        return dsn.parse(self.database, need_dbname=True)

    @property
    def edit_row(self) -> bool:
        """Whether the run times the first page after a code edit: the restarts cost
        seconds that --quick is for saving."""
        return self.edit and (not self.quick or self.edit_asked)

    @property
    def warm_requests(self) -> int:
        return WARM_REQUESTS_QUICK if self.quick else WARM_REQUESTS


def docs_table() -> str:
    """The settings table of docs/demo.md (its rows are :class:`DemoOptions`' numbers)."""
    return markdown(DemoOptions)


@dataclass
class _Database:
    kind: str  # "postgresql" or "sqlite"
    source: str
    url: str = ""  # SQLite only
    conn: Dsn | None = None  # PostgreSQL: parsed once, the password included
    note: str | None = None
    monitor: Any = None  # a psycopg connection to read pg_stat_activity

    @property
    def address(self) -> tuple[str, int]:
        """Where PostgreSQL listens (the first host of a list; libpq's default port)."""
        assert self.conn is not None
        return self.conn.host.split(",")[0] or "127.0.0.1", self.conn.port

    def for_app(self, host: str, port: int, app_name: str) -> str:
        """The connection string an app uses through ``host:port``, tagged with
        ``app_name``; without the password, which travels in ``PGPASSWORD``."""
        assert self.conn is not None
        through = self.conn.replace(
            host=host,
            port=str(port),
            hostaddr=None,
            password=None,
            application_name=app_name,
            connect_timeout="10",
        )
        return conninfo(through.params)


def _check_ports(options: DemoOptions) -> None:
    if not options.port_base:
        return
    for i in range(len(VERSIONS)):
        port = options.port_base + i
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            # Bound as the servers will bind: on POSIX a port with only TIME_WAIT
            # sockets left is free for them (SO_REUSEADDR), on Windows it is taken only
            # by a listener (SO_EXCLUSIVEADDRUSE).
            set_listen_options(s)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise LagscopeError(
                    "listen",
                    f"127.0.0.1:{port} is not free ({exc.strerror or exc}); choose another "
                    "--port-base",
                    ExitCode.ENVIRONMENT,
                ) from None


def _connect_monitor(conn: Dsn) -> Any:
    import psycopg

    monitor = conn.replace(connect_timeout="10", application_name=f"{APP_NAME_PREFIX}monitor")
    return psycopg.connect(**monitor.connect_kwargs(), autocommit=True)


def _user_database(conn: Dsn) -> _Database:
    db = _Database("postgresql", "--database", conn=conn)
    try:
        db.monitor = _connect_monitor(conn)
    except Exception as exc:
        message = redact.text(" ".join(str(exc).split()) or type(exc).__name__, [conn.password])
        raise LagscopeError(
            "database",
            f"cannot connect to {redact.dsn_params(conn.params)}: {message}",
            ExitCode.CONNECT,
        ) from None
    return db


PG_BIN_ENV = "LAGSCOPE_PG_BIN"


def _pg_bin_from_env() -> Path | None:
    """``LAGSCOPE_PG_BIN``: the folder with initdb/pg_ctl to use (default: searched)."""
    value = os.environ.get(PG_BIN_ENV)
    if not value:
        return None
    bindir = Path(value)
    if find_pg_bin(path=str(bindir), globs=()) is None:
        raise PgUnavailable(f"no initdb/pg_ctl in {PG_BIN_ENV}={value}")
    return bindir


def _sqlite(workdir: Path, note: str | None) -> _Database:
    path = (workdir / "demo.sqlite3").resolve()
    return _Database("sqlite", "sqlite", "sqlite:///" + path.as_posix(), note=note)


def _open_database(
    options: DemoOptions, workdir: Path, stack: contextlib.ExitStack, progress: Progress
) -> _Database:
    if options.database_conn is not None:
        progress(f"database: connecting to {redact.dsn_params(options.database_conn.params)}")
        db = _user_database(options.database_conn)
    elif options.database:
        return _sqlite(workdir, None)
    else:
        progress("database: starting a throwaway PostgreSQL cluster")
        try:
            cluster = PgCluster.create(bindir=_pg_bin_from_env())
        except PgUnavailable as exc:
            return _sqlite(
                workdir, f"{exc}; using SQLite (the database half of the story needs PostgreSQL)"
            )
        stack.callback(cluster.remove)
        conn = dsn.parse(cluster.dsn)
        db = _Database("postgresql", "throwaway cluster", conn=conn)
        db.monitor = _connect_monitor(conn)
    stack.callback(db.monitor.close)
    return db


def _pg_backends(db: _Database, result: VersionResult) -> VersionResult:
    """PostgreSQL's view: this version's backends, and those opened during the visit that
    are still open. Read once every visit is over (the last version visited keeps its
    connections), so that backends closed at the end of "before"'s last requests
    (CONN_MAX_AGE=0) have gone; diagnose's own start after the window."""
    if db.monitor is None:
        return result
    row = db.monitor.execute(
        "SELECT count(*), count(*) FILTER (WHERE backend_start BETWEEN to_timestamp(%s) "
        "AND to_timestamp(%s)) FROM pg_stat_activity WHERE application_name = %s",
        (result.ready_at, result.visit_end_at, APP_NAME_PREFIX + result.name),
    ).fetchone()
    return replace(result, pg_backends=int(row[0]), pg_backends_after_start=int(row[1]))


@contextlib.contextmanager
def _injector(routes: list[Route], log_path: str | None) -> Iterator[Injector]:
    inj = Injector(routes, log_path=None if log_path is None else Path(log_path))
    try:
        inj.start()
    except OSError as exc:
        port = routes[0].listen[1]
        raise LagscopeError(
            "listen",
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})",
            ExitCode.ENVIRONMENT,
        ) from None
    try:
        yield inj
    finally:
        inj.stop()


def _faults(tax_ms: float) -> list[ConnectionTax]:
    return [ConnectionTax(tax_ms)] if tax_ms > 0 else []


def _in_window(records: list[ConnectionRecord], start: float, end: float) -> list[ConnectionRecord]:
    return [r for r in records if start <= r.accepted_at <= end]


@dataclass
class _Running:
    spec: VersionSpec
    child: Child
    http: Injector
    db: Injector | None
    url: str
    ready_at: float
    startup_ms: float
    db_accepted_at_ready: int = 0
    http_accepted_at_ready: int = 0
    upstream: Injector | None = None  # the tax between nginx and the app (--nginx)
    upstream_accepted_at_ready: int = 0


@dataclass
class _Launched:
    index: int
    spec: VersionSpec
    child: Child
    db: Injector | None
    started: float


def _launch_version(
    index: int,
    spec: VersionSpec,
    db: _Database,
    options: DemoOptions,
    workdir: Path,
    stack: contextlib.ExitStack,
    progress: Progress,
    clock: Clock,
    migrate: bool = True,
    tls: _Tls | None = None,
) -> _Launched:
    """Start the version's database tax proxy and its server process (not waiting).

    ``migrate=False``: a plain-waitress version that leaves creating the database to the
    one that starts with it. ``lagscope serve`` always checks migrations, so it starts
    once the database exists."""
    progress(f"{spec.name}: starting ({spec.title})")
    start = clock()
    app_name = APP_NAME_PREFIX + spec.name
    db_inj: Injector | None = None
    if db.kind == "postgresql":
        db_route = Route(("127.0.0.1", 0), db.address, _faults(options.tax_ms), f"{spec.name}-db")
        db_inj = stack.enter_context(_injector([db_route], options.log_path))
        host, port = db_inj.address(0)
        app_db_url = db.for_app(host, port, app_name)
    else:
        app_db_url = db.url
    env = dict(os.environ)
    env["LAGSCOPE_DATA_DIR"] = str(workdir)
    env["LAGSCOPE_DEMO_DATABASE"] = app_db_url
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env[TEMPLATES_ENV] = str(editable_templates(workdir, spec.name))
    if db.conn is not None and db.conn.password is not None:
        env["PGPASSWORD"] = db.conn.password
    if spec.server == "lagscope":
        from lagscope.serve.process import serve_command
        from lagscope.serve.server import LISTENING_PREFIX

        args = ["--demo", "--database", app_db_url, "--host", "127.0.0.1", "--port", "0"]
        # Well within Child.stop's wait: a browser's HTTP/2 connection open when a stop
        # signal reaches granian holds its worker until this runs out (docs/serve.md).
        args += ["--shutdown-timeout", f"{SERVE_SHUTDOWN_S:g}"]
        if tls is not None and not options.nginx:  # with --nginx, nginx speaks TLS
            args += ["--https", "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
        elif options.edit_row:
            args.append("--reload")  # what a developer runs while editing
        argv = serve_command(args)
        child = Child(spec.name, argv, LISTENING_PREFIX, env=env, cwd=str(workdir))
    else:
        argv = child_command(0, spec.conn_max_age, spec.waitress, migrate=migrate)
        child = Child(spec.name, argv, READY_PREFIX, env=env, cwd=str(workdir))
    stack.callback(child.stop)
    child.launch()
    return _Launched(index, spec, child, db_inj, start)


def _wait_version(
    launched: _Launched,
    options: DemoOptions,
    nginx: Path | None,
    workdir: Path,
    stack: contextlib.ExitStack,
    progress: Progress,
    clock: Clock,
    wall_clock: Clock,
    tls: _Tls | None = None,
) -> _Running:
    """Wait for the server's readiness line, then put the HTTP tax proxy in front (and
    nginx, with ``--nginx``; it speaks TLS for "lagscope" over HTTPS)."""
    spec, child = launched.spec, launched.child
    try:
        app_url = child.wait_ready(READY_TIMEOUT_S)
    except ChildFailed as exc:
        raise LagscopeError(
            "start", f"{spec.name}: {exc} ({exc.output or 'no output'})", ExitCode.ENVIRONMENT
        ) from None
    app = urlsplit(app_url)
    target = (app.hostname or "127.0.0.1", int(app.port or 0))
    https = tls is not None and spec.server == "lagscope"
    upstream_inj: Injector | None = None
    if nginx is not None:
        # browser -> tax -> nginx -> tax -> app: the antivirus taxes every hop.
        up_route = Route(("127.0.0.1", 0), target, _faults(options.tax_ms), f"{spec.name}-upstream")
        upstream_inj = stack.enter_context(_injector([up_route], options.log_path))
        proc = NginxProcess(
            nginx,
            workdir / f"nginx-{spec.name}",
            spec.nginx_keepalive,
            upstream_inj.address(0),
            tls=_nginx_tls(nginx, tls) if https and tls is not None else None,
        )
        stack.callback(proc.stop)
        target = ("127.0.0.1", proc.start())
    listen_port = options.port_base + launched.index if options.port_base else 0
    http_route = Route(
        ("127.0.0.1", listen_port), target, _faults(options.tax_ms), f"{spec.name}-http"
    )
    http_inj = stack.enter_context(_injector([http_route], options.log_path))
    host, port = http_inj.address(0)
    scheme = "https" if https else "http"
    startup_ms = (clock() - launched.started) * 1000
    running = _Running(
        spec,
        child,
        http_inj,
        launched.db,
        f"{scheme}://{host}:{port}",
        wall_clock(),
        startup_ms,
        db_accepted_at_ready=launched.db.counters().accepted if launched.db else 0,
        http_accepted_at_ready=http_inj.counters().accepted,
        upstream=upstream_inj,
        upstream_accepted_at_ready=upstream_inj.counters().accepted if upstream_inj else 0,
    )
    progress(f"{spec.name}: ready in {startup_ms:.0f} ms at {running.url}/items/")
    return running


def _measure(
    running: _Running,
    db: _Database,
    options: DemoOptions,
    progress: Progress,
    clock: Clock,
    wall_clock: Clock,
    tls: _Tls | None = None,
) -> VersionResult:
    spec = running.spec
    progress(f"{spec.name}: visiting like a browser (1 page, {PARALLEL_CONNECTIONS} connections)")
    parts = urlsplit(running.url)
    samples: list[Sample] = run_visit(
        parts.hostname or "127.0.0.1",
        int(parts.port or 0),
        visit_plan(PARALLEL_CONNECTIONS, options.warm_requests),
        timeout_s=REQUEST_TIMEOUT_S,
        clock=clock,
        tls=tls.client_context() if tls is not None and parts.scheme == "https" else None,
    )
    visit_end = wall_clock()
    http_c = running.http.counters()
    db_c = running.db.counters() if running.db else None
    result = summarize(
        VersionResult(
            name=spec.name,
            title=spec.title,
            settings=spec.settings(),
            url=running.url,
            startup_ms=round(running.startup_ms, 1),
            samples=tuple(samples),
            http_connections=http_c.accepted - running.http_accepted_at_ready,
            db_connects_after_start=(
                db_c.accepted - running.db_accepted_at_ready if db_c is not None else None
            ),
            upstream_connections=(
                running.upstream.counters().accepted - running.upstream_accepted_at_ready
                if running.upstream is not None
                else None
            ),
            ready_at=round(running.ready_at, 6),
            visit_end_at=round(visit_end, 6),
        )
    )
    progress(
        f"{spec.name}: first request {result.first_request_ms:.0f} ms, first 10 "
        f"{result.first10_total_ms:.0f} ms, warm p50 {result.warm_p50_ms:.0f} ms"
    )
    return result


def _browse(
    session: BrowserSession,
    running: _Running,
    result: VersionResult,
    notes: list[str],
    progress: Progress,
) -> VersionResult:
    """After the visit (outside its ground-truth window): the browser's loads of both pages.
    A page the browser cannot load is a note; the other figures stand."""
    name = running.spec.name
    progress(f"{name}: loading both pages in {session.name}")
    try:
        pages = browse(session, running.url)
    except LagscopeError as exc:
        note = f"{name}: browser: {exc.message}"
        notes.append(note)
        progress(note)
        return result
    html, json_page = pages
    progress(
        f"{name}: browser: HTML cold {html.cold_ms:.0f} ms over {html.connections} connections "
        f"(reload {html.reload_ms:.0f} ms), JSON cold {json_page.cold_ms:.0f} ms"
    )
    return replace(result, browser_pages=pages)


def _with_port(argv: list[str], port: int) -> list[str]:
    """``argv`` with its ``--port`` value replaced (a restart listens where the tax proxy
    points), and a demo child told to leave the database alone."""
    out = list(argv)
    out[out.index("--port") + 1] = str(port)
    if "lagscope.demo.child" in out and "--no-migrate" not in out:
        out.append("--no-migrate")
    return out


def _relaunch(running: _Running, stack: contextlib.ExitStack) -> Child:
    """Stop the version's server and start it again on the same port, as a user does after
    an edit; returns the new child without waiting for it."""
    old = running.child
    port = urlsplit(old.url).port or 0
    old.stop()
    child = Child(old.name, _with_port(old.argv, port), old.ready_prefix, env=old.env, cwd=old.cwd)
    stack.callback(child.stop)
    running.child = child
    child.launch()
    return child


def _reloaded_at(child: Child, seen: int) -> float:
    """When ``serve --reload`` printed its next "reloaded in" line (bounded wait)."""
    from lagscope.serve.reload.run import RELOADED_PREFIX

    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        found = [i for i, line in enumerate(child.lines) if line.startswith(RELOADED_PREFIX)]
        if len(found) > seen:
            return child.line_at_s[found[seen]]
        if time.monotonic() > deadline or not child.alive():
            raise LagscopeError(
                "edit", f"{child.name}: no reload within {READY_TIMEOUT_S:g} s", ExitCode.TIMEOUT
            )
        time.sleep(0.02)


def _launch_twin(
    launched: _Launched,
    db: _Database,
    options: DemoOptions,
    stack: contextlib.ExitStack,
    progress: Progress,
) -> Child:
    """``serve --reload`` beside an HTTPS "lagscope" (granian, which cannot reload) for the
    edit row: the same app and templates over plain HTTP, with a database tax proxy and an
    ``application_name`` of its own (so the version's ground truth counts none of its
    connections). Launched with the versions: its start-up overlaps theirs."""
    old = launched.child
    name = f"{launched.spec.name}-reload"
    env = dict(old.env)
    if db.kind == "postgresql":
        route = Route(("127.0.0.1", 0), db.address, _faults(options.tax_ms), f"{name}-db")
        host, port = stack.enter_context(_injector([route], options.log_path)).address(0)
        env["LAGSCOPE_DEMO_DATABASE"] = db.for_app(host, port, APP_NAME_PREFIX + name)
    argv = list(old.argv)
    argv[argv.index("--database") + 1] = env["LAGSCOPE_DEMO_DATABASE"]
    for flag in ("--tls-cert-file", "--tls-key-file"):
        if flag in argv:
            del argv[argv.index(flag) : argv.index(flag) + 2]
    argv = [a for a in argv if a != "--https"] + ["--reload"]
    progress(f"{launched.spec.name}: also serve --reload over HTTP, for the edit row")
    child = Child(name, argv, old.ready_prefix, env=env, cwd=old.cwd)
    stack.callback(child.stop)
    child.launch()
    return child


def _twin_url(twin: Child, name: str, options: DemoOptions, stack: contextlib.ExitStack) -> str:
    """The twin's URL through a tax proxy of its own, once it is ready."""
    try:
        app = urlsplit(twin.wait_ready(READY_TIMEOUT_S))
    except ChildFailed as exc:
        raise LagscopeError("edit", f"{twin.name}: {exc}", ExitCode.ENVIRONMENT) from None
    route = Route(
        ("127.0.0.1", 0),
        (app.hostname or "127.0.0.1", int(app.port or 0)),
        _faults(options.tax_ms),
        f"{name}-reload-http",
    )
    inj = stack.enter_context(_injector([route], options.log_path))
    host, port = inj.address(0)
    return f"http://{host}:{port}"


@dataclass
class _Edit:
    """One version's edit under way (see :func:`_edit_all`)."""

    index: int
    probe: EditProbe
    child: Child  # the one that serves the edit (the reload twin under --https)
    reload: bool
    seen: int = 0  # "reloaded in" lines before the edit
    error: str | None = None


def _edit_start(
    index: int,
    running: _Running,
    options: DemoOptions,
    workdir: Path,
    stack: contextlib.ExitStack,
    tls: _Tls | None,
    twin: Child | None,
) -> _Edit:
    """The probe of one version's edit, its page loaded twice (see lagscope.demo.edit)."""
    from lagscope.serve.reload.run import RELOADED_PREFIX

    child, url = running.child, running.url
    if twin is not None:
        child, url = twin, _twin_url(twin, running.spec.name, options, stack)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 0)

    def connect() -> http.client.HTTPConnection:
        if parts.scheme == "https" and tls is not None:
            return http.client.HTTPSConnection(
                host, port, timeout=REQUEST_TIMEOUT_S, context=tls.client_context()
            )
        return http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)

    reload = "--reload" in child.argv
    probe = EditProbe(
        connect,
        workdir / f"templates-{running.spec.name}",
        "reload" if reload else "restart",
        time.perf_counter,  # the clock of the children's line times
    )
    edit = _Edit(index, probe, child, reload)
    edit.seen = sum(1 for line in child.lines if line.startswith(RELOADED_PREFIX))
    probe.warm()
    return edit


_EDIT_ERRORS = (LagscopeError, ChildFailed, OSError, http.client.HTTPException, ValueError)


def _edit_all(
    running: list[_Running],
    results: list[VersionResult],
    options: DemoOptions,
    workdir: Path,
    stacks: list[contextlib.ExitStack],
    progress: Progress,
    notes: list[str],
    tls: _Tls | None,
    twins: dict[int, Child],
) -> list[VersionResult]:
    """Every version's first page after a code edit: each page loaded warm; every template
    edited, "before" and "hand-tuned" restarted and "lagscope" reloading side by side; then
    each first page, one version at a time, "lagscope" first (its spare process starts
    2 s after the switch). A version that fails here gets a note and no row."""
    edits: list[_Edit] = []

    def failed(name: str, exc: BaseException) -> None:
        note = f"{name}: first page after an edit: {exc}"
        notes.append(note)
        progress(note)

    for i, run in enumerate(running):
        try:
            edits.append(_edit_start(i, run, options, workdir, stacks[i], tls, twins.get(i)))
        except _EDIT_ERRORS as exc:
            failed(run.spec.name, exc)
    progress(
        "editing each version's page template: before and hand-tuned restart, lagscope "
        "switches with serve --reload"
    )
    for edit in edits:
        try:
            edit.probe.edit()
            if not edit.reload:
                edit.child = _relaunch(running[edit.index], stacks[edit.index])
        except _EDIT_ERRORS as exc:
            edit.error = str(exc)
    for edit in edits:
        if edit.error is not None:
            continue
        try:
            if edit.reload:
                edit.probe.ready(_reloaded_at(edit.child, edit.seen))
            else:
                edit.child.wait_ready(READY_TIMEOUT_S)
                edit.probe.ready(edit.child.ready_at_s)
        except _EDIT_ERRORS as exc:
            edit.error = str(exc)
    figures: dict[int, EditFigures] = {}
    for edit in sorted(edits, key=lambda e: not e.reload):
        name = running[edit.index].spec.name
        try:
            if edit.error is not None:
                failed(name, LagscopeError("edit", edit.error, ExitCode.ENVIRONMENT))
                continue
            got = figures[edit.index] = edit.probe.first()
            progress(
                f"{name}: first page after the edit {got.first_ms:.0f} ms "
                f"({'a new' if got.new_connections else 'the kept'} connection; "
                f"{got.how} took {got.ready_ms:.0f} ms)"
            )
        except _EDIT_ERRORS as exc:
            failed(name, exc)
        finally:
            edit.probe.close()
    return [replace(r, edit=figures.get(i)) for i, r in enumerate(results)]


def _ground_truth(running: _Running, result: VersionResult) -> VersionResult:
    """Taxes actually applied, from the proxies' records of the visit's window."""
    start, end = result.ready_at, result.visit_end_at
    http = _in_window(running.http.records(), start, end)
    db = _in_window(running.db.records(), start, end) if running.db else []
    return replace(
        result,
        http_taxed=sum(1 for r in http if r.tax_applied_ms),
        db_tax_paid_ms=round(sum(r.tax_applied_ms or 0.0 for r in db), 3),
    )


def _wait_closed(inj: Injector | None) -> None:
    if inj is not None:
        with contextlib.suppress(TimeoutError):
            inj.wait_records(inj.counters().accepted, timeout_s=5.0)


def _diagnose_one(diagnose: DiagnoseFn, url: str, cafile: str | None) -> tuple[Any, str | None]:
    try:
        outcome = diagnose(url, cafile)
    except LagscopeError as exc:
        return None, exc.one_line()
    except Exception as exc:  # a diagnose bug must not cost the measurements
        return None, f"{type(exc).__name__}: {exc}"
    return outcome, None


@dataclass(frozen=True)
class _Tls:
    """``demo --https``: a CA of this run's own (lagscope.cert, in the run's temporary
    directory, removed with it) and its server key's hash, which only the demo's browser
    trusts; nothing is installed and nothing is written outside the run's directory."""

    ca: Path
    cert: Path
    key: Path
    spki: str

    def client_context(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=str(self.ca))


def https_plan(
    options: DemoOptions, browser_runs: bool, installed: Callable[[str], bool]
) -> tuple[bool, str | None]:
    """Whether "lagscope" is served over HTTPS, and the note saying why not when the default
    (on when the browser runs) cannot be. ``--https`` given without what it needs (granian,
    or nginx with --nginx; cryptography for the CA) is an error (exit 8)."""
    if not options.https or not (browser_runs or options.https_asked):
        return False, None
    needs = ["cryptography"] + ([] if options.nginx else ["granian"])
    missing = [name for name in needs if not installed(name)]
    if not missing:
        return True, None
    extras = ",".join("https" if name == "cryptography" else name for name in missing)
    why = f"{' and '.join(missing)} not installed (pip install 'lagscope[{extras}]')"
    if options.https_asked:
        raise LagscopeError("demo", f"--https: {why}", ExitCode.ENVIRONMENT)
    return False, f"lagscope served over plain HTTP: {why}"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _nginx_tls(nginx: Path, tls: _Tls) -> Any:
    """nginx's TLS listener with this run's certificate, HTTP/2 in its version's syntax."""
    from lagscope.nginx.cli import nginx_version
    from lagscope.nginx.render import Tls

    return Tls(tls.cert, tls.key, nginx_version(nginx))


def _run_tls(workdir: Path) -> _Tls:
    from lagscope.cert import ensure_local

    made = ensure_local(workdir)
    from lagscope.cert.authority import spki_sha256_b64  # cryptography is there now

    files = made.files
    return _Tls(files.ca_cert, files.leaf_cert, files.leaf_key, spki_sha256_b64(made.leaf))


class _Diagnoses:
    """Each version's diagnose on its own thread, started right after its visit.

    Diagnose mostly waits out the tax (a few requests a second, each held 300 ms), so the
    runs overlap the later visits and each other at little cost to them, and the demo
    pays for the slowest run ("before") instead of the sum. Every compared figure comes
    from the visits, which still run one at a time.
    """

    def __init__(
        self, diagnose: DiagnoseFn, progress: Progress, cafile: str | None, wait_s: float
    ) -> None:
        self.diagnose = diagnose
        self.progress = progress
        self.cafile = cafile
        self.wait_s = wait_s
        self.outcomes: dict[str, tuple[Any, str | None]] = {}
        self.threads: list[threading.Thread] = []
        self.started: list[str] = []

    def start(self, run: _Running) -> None:
        name = run.spec.name
        self.started.append(name)
        self.progress(f"{name}: diagnose {run.url}/api/items/ (in the background)")

        def work() -> None:
            self.outcomes[name] = _diagnose_one(self.diagnose, run.url + "/api/items/", self.cafile)

        thread = threading.Thread(target=work, name=f"diagnose-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self, results: list[VersionResult]) -> list[VersionResult]:
        pending = [name for name in self.started if name not in self.outcomes]
        if pending:
            self.progress(f"diagnose: waiting for {', '.join(pending)}")
        deadline = time.monotonic() + self.wait_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        out = []
        for result in results:
            outcome, error = self.outcomes.get(
                result.name, (None, f"no result within {self.wait_s:g} s")
            )
            if outcome is not None:
                result = replace(result, findings=outcome.findings, diagnose=outcome.report)
            out.append(replace(result, diagnose_error=error))
        return out


def _machine() -> str:
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )


def _check_extras() -> None:
    missing = [m for m in ("django", "waitress") if importlib.util.find_spec(m) is None]
    if missing:
        raise LagscopeError(
            "demo",
            f"{', '.join(missing)} not installed (pip install 'lagscope[serve]')",
            ExitCode.ENVIRONMENT,
        )


def run_demo(
    options: DemoOptions,
    progress: Progress,
    diagnose: DiagnoseFn | None,
    *,
    hold: Callable[[DemoReport, Path | None], None] | None = None,
    clock: Clock = time.perf_counter,
    wall_clock: Clock = time.time,
) -> DemoReport:
    """Run the whole demo; everything started is stopped and removed before it returns.

    ``hold`` (with ``keep``) is called with the finished report, and the run's CA file
    when "lagscope" is served over HTTPS, while the three versions still run; cleanup
    starts when it returns or raises (Ctrl+C).
    """
    _check_extras()
    _check_ports(options)
    nginx: Path | None = None
    if options.nginx:
        from lagscope.nginx.binary import find_nginx

        nginx = find_nginx(options.nginx_bin)
        if nginx is None:
            where = f"at {options.nginx_bin}" if options.nginx_bin else "on PATH"
            raise LagscopeError(
                "nginx",
                f"nginx not found {where} (install it, give --nginx-bin, or drop --nginx)",
                ExitCode.ENVIRONMENT,
            )
    started = clock()
    notes: list[str] = []
    choice, no_browser = find_browser_for_demo(options.browser, options.browser_path)
    https, no_https = https_plan(options, choice is not None, _installed)
    for note in (no_browser, no_https):
        if note is not None:
            notes.append(note)
            progress(note)
    with contextlib.ExitStack() as stack:
        workdir = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="lagscope-demo-", ignore_cleanup_errors=True)
            )
        )
        tls = _run_tls(workdir) if https else None
        session = (
            stack.enter_context(
                BrowserSession(
                    choice, LOAD_TIMEOUT_S, trusted_spki=(tls.spki,) if tls is not None else ()
                )
            )
            if choice is not None
            else None
        )
        if nginx is not None:
            # nginx's workers run as nobody under root and must reach their prefix in here.
            workdir.chmod(0o711)
        db = _open_database(options, workdir, stack, progress)
        if db.note:
            notes.append(db.note)
            progress(db.note)
        # One stack per version, inside the run's stack: a version is stopped as soon as
        # it is measured, and anything still running unwinds with the run.
        stacks = [stack.enter_context(contextlib.ExitStack()) for _ in VERSIONS]

        def launch(i: int, migrate: bool = True) -> _Launched:
            return _launch_version(
                i, VERSIONS[i], db, options, workdir, stacks[i], progress, clock, migrate, tls
            )

        def wait(launched: _Launched) -> _Running:
            return _wait_version(
                launched,
                options,
                nginx,
                workdir,
                stacks[launched.index],
                progress,
                clock,
                wall_clock,
                tls,
            )

        # The first version creates and seeds the database; the other plain-waitress ones
        # start alongside without touching it; lagscope serve (whose start-up checks
        # migrations) once it exists.
        # Start-up is not what is compared, and this halves the waiting.
        first = launch(0)
        rest = range(1, len(VERSIONS))
        early = [launch(i, migrate=False) for i in rest if VERSIONS[i].server == "waitress"]
        ready = {0: wait(first)}
        late = [launch(i) for i in rest if VERSIONS[i].server != "waitress"]
        # The edit row's serve --reload beside an HTTPS "lagscope" (see _launch_twin).
        twins = {
            item.index: _launch_twin(item, db, options, stacks[item.index], progress)
            for item in late
            if options.edit_row and "--reload" not in item.child.argv
        }
        for launched in early + late:
            ready[launched.index] = wait(launched)
        running = [ready[i] for i in range(len(VERSIONS))]
        # The visits, one version at a time: these are the figures compared. Each
        # version's diagnose starts once its visit is over (see _Diagnoses).
        diagnoses = (
            _Diagnoses(
                diagnose,
                progress,
                str(tls.ca) if tls is not None else None,
                options.diagnose_max_time_s + DIAGNOSE_GRACE_S,
            )
            if diagnose is not None and options.diagnose
            else None
        )
        results: list[VersionResult] = []
        for run in running:
            results.append(_measure(run, db, options, progress, clock, wall_clock, tls))
            if diagnoses is not None:
                diagnoses.start(run)
        # PostgreSQL's view once every visit is over, so the per-request connections of
        # "before" have exited; diagnose's own connections fall after each window.
        results = [_pg_backends(db, r) for r in results]
        if diagnoses is not None:
            results = diagnoses.finish(results)
        # The browser's loads once no diagnose runs in the background, so neither disturbs
        # the other's timings (after the visits' ground-truth windows too).
        if session is not None:
            results = [
                _browse(session, run, r, notes, progress)
                for run, r in zip(running, results, strict=True)
            ]
        # The edit last: a restart resets what the other figures measured.
        if options.edit_row:
            results = _edit_all(
                running, results, options, workdir, stacks, progress, notes, tls, twins
            )
        for i, run in enumerate(running):
            if not options.keep:
                progress(f"{run.spec.name}: stopping")
                run.http.stop()
                run.child.stop()
                _wait_closed(run.db)
                stacks[i].close()
        results = [_ground_truth(run, r) for run, r in zip(running, results, strict=True)]
        report = DemoReport(
            tax_ms=options.tax_ms,
            database=db.kind,
            database_source=db.source,
            nginx=options.nginx,
            quick=options.quick,
            machine=_machine(),
            versions=tuple(results),
            wall_s=round(clock() - started, 2),
            notes=tuple(notes),
            browser=session.name if session is not None else None,
            https=tls is not None,
        )
        if options.keep and hold is not None:
            hold(report, tls.ca if tls is not None else None)
    return report

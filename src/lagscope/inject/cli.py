"""The ``lagscope inject`` command: routes from flags or TOML, live counters, clean stop.

This module owns only the command-line shell: it turns flags into routes and settings
(through ``lagscope.inject.config``), runs an :class:`~lagscope.inject.api.Injector`, prints
one readiness line per route, shows live counters while it runs (rich, on a terminal) and a
summary when it stops. The proxy runs on its own thread; the main thread only sleeps in
short steps and watches for a stop request from :mod:`lagscope.stopping` (SIGINT, SIGTERM,
SIGHUP on POSIX; Ctrl+C, Ctrl+Break and console close on Windows), without
``loop.add_signal_handler``.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lagscope.addresses import resolves_to_loopback
from lagscope.console import keep_stderr_printable
from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject.api import Injector
from lagscope.inject.config import (
    ProxySettings,
    RunLimits,
    describe_fault,
    load_routes_toml,
    parse_address,
    parse_fault,
    parse_route,
)
from lagscope.inject.plan import Route
from lagscope.inject.proxy import note_coarse_timer
from lagscope.settings_table import build, click_options
from lagscope.stopping import graceful_signals, handle_stop_signals

__all__ = ["counters_table", "inject"]

_REFRESH_S = 0.25


def counters_table(injector: Injector) -> Table:
    """Live counters, one row per route (addresses are in the readiness lines above)."""
    table = Table(title="lagscope inject (Ctrl+C to stop)", title_justify="left")
    table.add_column("route", no_wrap=True)
    for col in ("conns", "active", "closed", "taxed", "resets", "up fail", "c2u B", "u2c B"):
        table.add_column(col, justify="right", no_wrap=True)
    for i, name in enumerate(injector.route_names):
        c = injector.counters(i)
        table.add_row(
            name,
            str(c.accepted),
            str(c.active),
            str(c.closed),
            str(c.taxed),
            str(c.resets_injected),
            str(c.upstream_failures),
            f"{c.bytes_c2u:,}",
            f"{c.bytes_u2c:,}",
        )
    return table


def _collect_routes(
    listen: str | None,
    upstream: str | None,
    faults: tuple[str, ...],
    route_specs: tuple[str, ...],
    config: str | None,
    allow_non_loopback: bool,
) -> list[Route]:
    routes: list[Route] = []
    if listen is not None or upstream is not None or faults:
        if listen is None or upstream is None:
            raise LagscopeError(
                "config", "--listen and --upstream go together (or use --route)", ExitCode.USAGE
            )
        routes.append(
            Route(
                listen=parse_address(listen, what="listen address"),
                upstream=parse_address(upstream, what="upstream address"),
                faults=[parse_fault(f) for f in faults],
                allow_non_loopback=allow_non_loopback,
            )
        )
    routes += [parse_route(s, allow_non_loopback=allow_non_loopback) for s in route_specs]
    if config is not None:
        routes += load_routes_toml(config, allow_non_loopback=allow_non_loopback)
    if not routes:
        raise LagscopeError(
            "config",
            "nothing to proxy: give --listen/--upstream, --route or --config",
            ExitCode.USAGE,
        )
    return routes


@click.command(context_settings={"max_content_width": 100})
@click.option(
    "--listen", metavar="HOST:PORT", help="Listen address of the main route (port 0 = any)."
)
@click.option("--upstream", metavar="HOST:PORT", help="Where the main route forwards to.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="Fault on the main route, repeatable: tax:300, latency:20,jitter_ms=5,direction=u2c, "
    "reset:after_bytes=1024, bandwidth:100000, slow-close:500, blackhole, dial:2000, "
    "first:100; selection keys first_n=, every=, probability=, seed=.",
)
@click.option(
    "--route",
    "route_specs",
    multiple=True,
    metavar="'[NAME=]LISTEN UPSTREAM [SPEC ...]'",
    help="An extra route with its own faults, repeatable.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help="TOML file with [[route]] tables (see docs/inject.md).",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    help="Append one JSON line per finished connection to this file (ground truth).",
)
@click.option(
    "--allow-non-loopback",
    is_flag=True,
    help="Allow listening on a non-loopback address (exposes the proxy to the network).",
)
@click_options(RunLimits)
@click_options(ProxySettings)
def inject(
    listen: str | None,
    upstream: str | None,
    faults: tuple[str, ...],
    route_specs: tuple[str, ...],
    config: str | None,
    log_path: str | None,
    allow_non_loopback: bool,
    **settings: object,
) -> None:
    """Run a TCP proxy that injects faults (e.g. a 300 ms tax on every new connection).

    \b
    lagscope inject --listen 127.0.0.1:8081 --upstream 127.0.0.1:8080 --fault tax:300
    lagscope inject --config routes.toml --log truth.jsonl
    """
    keep_stderr_printable()  # asyncio and the proxy log what peers sent, and their errors
    limits, _ = build(RunLimits, {"duration_s": settings.pop("duration_s")})
    proxy_settings, _ = build(ProxySettings, settings)
    routes = _collect_routes(listen, upstream, faults, route_specs, config, allow_non_loopback)
    if log_path is not None:
        parent = Path(log_path).resolve().parent
        if not parent.is_dir():
            raise LagscopeError(
                "log",
                f"cannot write {log_path}: {parent} is not a directory",
                ExitCode.ENVIRONMENT,
            )
    for route in routes:
        if route.allow_non_loopback and not resolves_to_loopback(route.listen[0]):
            click.echo(
                f"lagscope: warning: listening on non-loopback {route.listen[0]}: anyone who "
                "can reach this machine can use the proxy",
                err=True,
            )
    note = note_coarse_timer(routes)
    if note is not None:
        click.echo(f"lagscope: warning: {note}", err=True)
    injector = Injector(routes, settings=proxy_settings, log_path=log_path)
    try:
        injector.start()
    except OSError as exc:
        raise LagscopeError("log", f"cannot open {log_path}: {exc}", ExitCode.ENVIRONMENT) from None
    console = Console(stderr=False)
    stop_requested = threading.Event()
    stopped = threading.Event()
    try:
        for i, (route, name) in enumerate(zip(routes, injector.route_names, strict=True)):
            host, port = injector.address(i)
            shown = ", ".join(describe_fault(f) for f in route.faults) or "no faults"
            # The readiness line: scripts wait for it and read the bound port from it.
            click.echo(
                f"inject: {name} listening on {host}:{port} -> "
                f"{route.upstream[0]}:{route.upstream[1]} ({shown})"
            )
        sys.stdout.flush()
        # SIGINT/SIGTERM/SIGHUP (Windows: Ctrl+C, Ctrl+Break, console close) end the run through
        # the same clean shutdown; a second, different signal interrupts at once.
        with handle_stop_signals(
            lambda _signum: stop_requested.set(), graceful_signals(), wait_stopped=stopped.wait
        ):
            _run(injector, console, limits.duration_s, stop_requested)
    finally:
        injector.stop()
        c = injector.counters()
        click.echo(
            f"inject: stopped; {c.accepted} connections ({c.taxed} taxed, "
            f"{c.resets_injected} reset, {c.upstream_failures} upstream failures), "
            f"{c.bytes_c2u:,} B client->upstream, {c.bytes_u2c:,} B upstream->client",
            err=True,
        )
        if injector.log_error is not None:
            click.echo(f"inject: the log stopped early: {injector.log_error}", err=True)
        stopped.set()
    if injector.log_error is not None:
        raise LagscopeError("log", injector.log_error, ExitCode.ENVIRONMENT)


def _run(
    injector: Injector, console: Console, duration_s: float | None, stop: threading.Event
) -> None:
    """Show counters until ``duration_s`` passes; a stop request ends the run as Ctrl+C
    does (exit 130)."""
    deadline = None if duration_s is None else time.perf_counter() + duration_s

    def running() -> bool:
        if stop.is_set():
            raise KeyboardInterrupt
        return deadline is None or time.perf_counter() < deadline

    # time.sleep, not Event.wait: a second signal's KeyboardInterrupt interrupts it on
    # Windows too.
    if console.is_terminal:
        with Live(counters_table(injector), console=console, auto_refresh=False) as live:
            while running():
                time.sleep(_REFRESH_S)
                live.update(counters_table(injector), refresh=True)
    else:
        while running():
            time.sleep(_REFRESH_S)

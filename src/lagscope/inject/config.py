"""Settings and route configuration for ``lagscope inject``.

This module owns the one commented table of proxy settings (:class:`ProxySettings`; CLI
flags and docs derive from its field metadata), the fault-spec mini-language used by the
CLI (``tax:300``, ``latency:delay_ms=20,jitter_ms=5,direction=u2c``), address parsing, the
loopback safety rule, and loading routes from a TOML file. It is pure apart from reading
the TOML file and resolving a listen host name.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lagscope.addresses import AddressError, parse_host_port
from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import read_text
from lagscope.inject.faults import FAULT_KINDS, Fault, FaultSpecError
from lagscope.inject.plan import Route
from lagscope.settings_table import markdown, setting, validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = [
    "FAULT_KINDS",
    "ProxySettings",
    "RunLimits",
    "describe_fault",
    "docs_table",
    "fault_from_mapping",
    "load_routes_toml",
    "parse_address",
    "parse_fault",
    "parse_route",
]


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy pump behaves, independent of faults."""

    chunk_bytes: int = setting(
        262144,
        unit="bytes",
        help="Largest single read, i.e. the largest chunk forwarded at once.",
        why="256 KiB matches asyncio's own socket read size, and doubled bulk throughput "
        "over 64 KiB (docs/performance.md)",
        minimum=1,
        maximum=64 * 1024 * 1024,
    )
    reader_buffer_bytes: int = setting(
        65536,
        unit="bytes",
        help="Read-ahead per socket before pausing it.",
        why="StreamReader limit: asyncio pauses reading a socket with ~2x this unread, which "
        "is what pushes back on a fast sender (backpressure)",
        minimum=1,
        maximum=64 * 1024 * 1024,
    )
    flow_buffer_bytes: int = setting(
        262144,
        unit="bytes",
        help="Bytes held per direction while chunks wait out per-chunk latency.",
        why="reading stops when full, so a slow reader pushes back on the sender instead of "
        "growing memory",
        minimum=1,
        maximum=1024 * 1024 * 1024,
    )
    connect_timeout_s: float = setting(
        10.0,
        unit="s",
        help="Seconds allowed to connect to the upstream.",
        why="a dead upstream must not hold a client forever; then the client is reset "
        "(`upstream_timeout`)",
        above=0,
        maximum=3600,
    )
    backlog: int = setting(
        1024,
        unit="connections",
        help="Listen backlog.",
        why="lets a burst of 1000 connects queue instead of being refused; Linux caps it at "
        "net.core.somaxconn",
        minimum=1,
        maximum=65535,
    )
    shutdown_timeout_s: float = setting(
        5.0,
        unit="s",
        help="Seconds to wait for connections on stop.",
        why="how long stopping waits for handlers to finish after aborting their sockets",
        above=0,
        maximum=3600,
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class RunLimits:
    """How long the command runs (the proxy's own settings are :class:`ProxySettings`)."""

    duration_s: float | None = setting(
        None,
        unit="s",
        help="Stop after this many seconds.",
        why="for scripts and benchmarks; Ctrl+C or SIGTERM stop it as cleanly",
        shown="run until Ctrl+C",
        above=0,
    )

    def __post_init__(self) -> None:
        validate(self)


def docs_table() -> str:
    """The settings table of docs/inject.md."""
    return markdown(ProxySettings, RunLimits)


def _bad(message: str) -> LagscopeError:
    return LagscopeError("config", message, ExitCode.USAGE)


def fault_from_mapping(kind: str, values: Mapping[str, Any]) -> Fault:
    """Build a fault from its kind name and key/value pairs (CLI spec or TOML table).

    Selection keys ``first_n``, ``every``, ``probability`` and ``seed`` go to the fault's
    :class:`~lagscope.inject.plan.Select` (``seed`` also seeds Latency jitter).
    """
    if kind not in FAULT_KINDS:
        raise _bad(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
    try:
        return FAULT_KINDS[kind].from_values(values)
    except FaultSpecError as exc:
        raise _bad(str(exc)) from None


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[:VALUE][,key=value...]``, e.g. ``tax:300``, ``reset:after_bytes=1024``,
    ``latency:20,jitter_ms=5,direction=u2c,probability=0.5,seed=7``."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise _bad(f"unknown fault {kind!r} in {spec!r} (known: {', '.join(FAULT_KINDS)})")
    main = FAULT_KINDS[kind].bare
    values: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if i != 0 or main is None:
                raise _bad(f"{spec!r}: expected key=value, got {part!r}")
            key, value = main, part
        key = key.strip()
        if key in values:
            # "tax:300,delay_ms=5" would silently take the last one.
            raise _bad(f"{spec!r}: {key} is given twice")
        values[key] = value.strip()
    return fault_from_mapping(kind, values)


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (loopback) into (host, port)."""
    try:
        return parse_host_port(text, empty_host="127.0.0.1")
    except AddressError as exc:
        raise _bad(f"bad {what} {text.strip()!r}: {exc}") from None


def parse_route(spec: str, *, allow_non_loopback: bool = False) -> Route:
    """``[NAME=]LISTEN UPSTREAM [FAULT ...]`` separated by spaces, e.g.
    ``app=127.0.0.1:8081 127.0.0.1:8080 tax:300``."""
    parts = spec.split()
    if len(parts) < 2:
        raise _bad(f"bad route {spec!r}: expected '[NAME=]LISTEN UPSTREAM [FAULT ...]'")
    name, eq, listen = parts[0].rpartition("=")
    if not eq:
        name, listen = "", parts[0]
    return Route(
        listen=parse_address(listen, what="listen address"),
        upstream=parse_address(parts[1], what="upstream address"),
        faults=[parse_fault(p) for p in parts[2:]],
        name=name,
        allow_non_loopback=allow_non_loopback,
    )


def load_routes_toml(path: str | Path, *, allow_non_loopback: bool = False) -> list[Route]:
    """Routes from a TOML file: ``[[route]]`` tables with ``listen``, ``upstream``, optional
    ``name`` and a list of ``[[route.fault]]`` tables, each with ``kind`` plus its keys."""
    p = Path(path)
    try:
        data = tomllib.loads(read_text(p))
    except OSError as exc:
        raise _bad(f"cannot read {p}: {exc.strerror or exc}") from None
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not text
        raise _bad(f"{p}: {exc}") from None
    tables = data.get("route")
    if not isinstance(tables, list) or not tables:
        raise _bad(f"{p}: expected at least one [[route]] table")
    routes = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise _bad(f"{p}: route {i + 1}: expected a [[route]] table")
        where = f"{p}: route {table.get('name') or i + 1}"
        for key in ("listen", "upstream"):
            if not isinstance(table.get(key), str):
                raise _bad(f"{where}: {key} = 'HOST:PORT' is required")
        unknown = set(table) - {"name", "listen", "upstream", "fault"}
        if unknown:
            raise _bad(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        faults = []
        fault_tables = table.get("fault", [])
        if not isinstance(fault_tables, list) or not all(isinstance(f, dict) for f in fault_tables):
            raise _bad(f"{where}: faults must be [[route.fault]] tables")
        for ft in fault_tables:
            values = dict(ft)
            kind = values.pop("kind", None)
            if not isinstance(kind, str):
                raise _bad(f"{where}: every [[route.fault]] needs kind = '<name>'")
            try:
                faults.append(fault_from_mapping(kind, values))
            except LagscopeError as exc:
                raise _bad(f"{where}: {exc.message}") from None
        routes.append(
            Route(
                listen=parse_address(table["listen"], what="listen address"),
                upstream=parse_address(table["upstream"], what="upstream address"),
                faults=faults,
                name=str(table.get("name", "")),
                allow_non_loopback=allow_non_loopback,
            )
        )
    return routes


def describe_fault(fault: Fault) -> str:
    """A short human description, e.g. ``tax 300 ms (both)`` or ``reset after 1024 B (u2c)``."""
    return fault.describe()

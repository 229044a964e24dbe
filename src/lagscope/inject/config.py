"""Settings and route configuration for ``lagscope inject``.

This module owns the one commented table of proxy settings (:class:`ProxySettings`; CLI
flags and docs derive from its field metadata), the fault-spec mini-language used by the
CLI (``tax:300``, ``latency:delay_ms=20,jitter_ms=5,direction=u2c``), address parsing, the
loopback safety rule, and loading routes from a TOML file. It is pure apart from reading
the TOML file and resolving a listen host name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject.plan import (
    Bandwidth,
    BlackHole,
    ConnectionTax,
    DialDelay,
    Direction,
    Fault,
    FirstChunkDelay,
    Latency,
    Reset,
    Route,
    Select,
    SlowClose,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

__all__ = [
    "FAULT_KINDS",
    "SETTINGS_HELP",
    "ProxySettings",
    "describe_fault",
    "fault_from_mapping",
    "is_loopback_host",
    "load_routes_toml",
    "parse_address",
    "parse_fault",
    "parse_route",
]


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ProxySettings:
    """How the proxy pump behaves, independent of faults."""

    # Largest single read from a socket, i.e. the largest chunk forwarded at once. 256 KiB
    # matches asyncio's own socket read size; 64 KiB halved bulk throughput (measured).
    chunk_bytes: int = _setting(262144, "largest single read, in bytes")
    # StreamReader limit: asyncio pauses reading a socket once about 2x this is buffered
    # and unread, which is what pushes back on a fast sender (backpressure).
    reader_buffer_bytes: int = _setting(65536, "read-ahead per socket before pausing it")
    # Bytes a direction may hold while chunks wait out per-chunk latency; reading stops
    # when full, so a slow reader pushes back on the sender instead of growing memory.
    flow_buffer_bytes: int = _setting(262144, "bytes held per direction under latency")
    # Upper bound for dialling the upstream; a dead upstream must not hold a client forever.
    connect_timeout_s: float = _setting(10.0, "seconds allowed to connect to the upstream")
    # listen() backlog; 1024 lets a burst of 1000 connects queue instead of being refused.
    backlog: int = _setting(1024, "listen backlog")
    # How long stop() waits for handlers to finish after aborting their sockets.
    shutdown_timeout_s: float = _setting(5.0, "seconds to wait for connections on stop")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value <= 0:
                raise ValueError(f"{f.name} must be > 0, got {value}")


SETTINGS_HELP: dict[str, str] = {
    f.name: str(f.metadata["help"]) for f in dataclasses.fields(ProxySettings)
}

# Fault kinds by their CLI/TOML name: (class, the field a bare value sets).
FAULT_KINDS: dict[str, tuple[type[Any], str | None]] = {
    "tax": (ConnectionTax, "delay_ms"),
    "first": (FirstChunkDelay, "delay_ms"),
    "latency": (Latency, "delay_ms"),
    "bandwidth": (Bandwidth, "bytes_per_s"),
    "reset": (Reset, "after_bytes"),
    "slow-close": (SlowClose, "delay_ms"),
    "blackhole": (BlackHole, None),
    "dial": (DialDelay, "delay_ms"),
}

_SELECT_KEYS = {"first_n": "first", "every": "every", "probability": "probability", "seed": "seed"}
_INT_FIELDS = {"bytes_per_s", "after_bytes", "seed", "first", "every"}


def _bad(message: str) -> LagscopeError:
    return LagscopeError("config", message, ExitCode.USAGE)


def _convert(kind: str, key: str, value: Any) -> Any:
    target = _SELECT_KEYS.get(key, key)
    try:
        if key == "direction":
            return Direction(str(value))
        if target in _INT_FIELDS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            # nan would silently apply nothing and inf would hold bytes forever.
            raise ValueError
        return number
    except (ValueError, TypeError, OverflowError):
        raise _bad(f"{kind}: bad value for {key}: {value!r}") from None


def fault_from_mapping(kind: str, values: Mapping[str, Any]) -> Fault:
    """Build a fault from its kind name and key/value pairs (CLI spec or TOML table).

    Selection keys ``first_n``, ``every``, ``probability`` and ``seed`` go to the fault's
    :class:`~lagscope.inject.plan.Select` (``seed`` also seeds Latency jitter).
    """
    if kind not in FAULT_KINDS:
        raise _bad(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
    cls, _main = FAULT_KINDS[kind]
    own = {f.name for f in dataclasses.fields(cls)} - {"select"}
    kwargs: dict[str, Any] = {}
    select: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in own and key not in _SELECT_KEYS:
            allowed = sorted(own | set(_SELECT_KEYS))
            raise _bad(f"{kind}: unknown key {key!r} (allowed: {', '.join(allowed)})")
        value = _convert(kind, key, raw)
        if key in _SELECT_KEYS:
            select[_SELECT_KEYS[key]] = value
            if key == "seed" and "seed" in own:
                kwargs["seed"] = value
        else:
            kwargs[key] = value
    try:
        fault: Fault = cls(**kwargs, select=Select(**select))
    except TypeError as exc:
        raise _bad(f"{kind}: {exc}") from None
    except ValueError as exc:
        raise _bad(f"{kind}: {exc}") from None
    return fault


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[:VALUE][,key=value...]``, e.g. ``tax:300``, ``reset:after_bytes=1024``,
    ``latency:20,jitter_ms=5,direction=u2c,probability=0.5,seed=7``."""
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise _bad(f"unknown fault {kind!r} in {spec!r} (known: {', '.join(FAULT_KINDS)})")
    main = FAULT_KINDS[kind][1]
    values: dict[str, str] = {}
    for i, part in enumerate(p.strip() for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if i != 0 or main is None:
                raise _bad(f"{spec!r}: expected key=value, got {part!r}")
            key, value = main, part
        values[key.strip()] = value.strip()
    return fault_from_mapping(kind, values)


def parse_address(text: str, *, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT`` or ``:PORT`` (loopback) into (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise _bad(f"bad {what} {text!r}: expected [IPv6]:PORT")
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise _bad(f"bad {what} {text!r}: expected HOST:PORT")
        if ":" in host:
            raise _bad(f"bad {what} {text!r}: write IPv6 addresses as [addr]:PORT")
    host = host or "127.0.0.1"
    try:
        port_n = int(port)
    except ValueError:
        raise _bad(f"bad {what} {text!r}: port {port!r} is not a number") from None
    if not 0 <= port_n <= 65535:
        raise _bad(f"bad {what} {text!r}: port out of range")
    return host, port_n


Resolver = Callable[[str], Sequence[str]]


def _resolve(host: str) -> Sequence[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_loopback_host(host: str, resolve: Resolver = _resolve) -> bool:
    """True when every address ``host`` stands for is loopback (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addrs = resolve(host)
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


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
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _bad(f"cannot read {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
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
    if isinstance(fault, ConnectionTax):
        text = f"tax {fault.delay_ms:g} ms ({fault.direction.value})"
    elif isinstance(fault, FirstChunkDelay):
        text = f"first-chunk delay {fault.delay_ms:g} ms ({fault.direction.value})"
    elif isinstance(fault, Latency):
        jitter = f"±{fault.jitter_ms:g}" if fault.jitter_ms else ""
        text = f"latency {fault.delay_ms:g}{jitter} ms/chunk ({fault.direction.value})"
    elif isinstance(fault, Bandwidth):
        text = f"bandwidth {fault.bytes_per_s} B/s ({fault.direction.value})"
    elif isinstance(fault, Reset):
        when = "at connect" if fault.after_bytes == 0 else f"after {fault.after_bytes} B"
        text = f"reset {when} ({fault.direction.value})"
    elif isinstance(fault, SlowClose):
        text = f"slow close {fault.delay_ms:g} ms ({fault.direction.value})"
    elif isinstance(fault, BlackHole):
        text = f"black hole ({fault.direction.value})"
    else:
        text = f"dial delay {fault.delay_ms:g} ms"
    selection = fault.select.describe()
    return text if selection == "all" else f"{text} [{selection}]"

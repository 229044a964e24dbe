"""The nginx settings table: every value ``lagscope nginx-config`` writes, with unit and reason.

This module owns the one commented table (in the spirit of waitress's ``adjustments.py``)
from which the rendered config, the CLI flags and docs/nginx.md all derive, plus the pure
parsing and validation of the command's inputs (``HOST:PORT`` endpoints, the timeout
consistency rule). No I/O.

The table is the frozen dataclass :class:`NginxSettings`: each field carries its unit, the
nginx directive it feeds and the reason for its default in ``field(metadata=...)``, so
``settings_table()`` can list them and the CLI can build one flag per field.
"""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any, cast

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "DEFAULT_LISTEN",
    "SERVER_IDLE_TIMEOUT_S",
    "Endpoint",
    "NginxSettings",
    "SettingDoc",
    "check_consistency",
    "expand_listen",
    "parse_endpoint",
    "settings_table",
    "upstream_server",
]

# The upstream server's idle timeout (waitress ``channel_timeout``) that the nginx upstream
# pool must stay below. It is read from ``lagscope serve``'s own settings table
# (lagscope.serve.settings) so the two cannot drift apart; this literal is only the fallback
# when that table cannot be read, and equals serve's default (see docs/decisions.md).
_SERVER_IDLE_TIMEOUT_FALLBACK_S = 310


def _server_idle_timeout_s() -> int:
    # importlib, not a plain import: nginx-config must work on installs where the serve
    # part is missing or broken (it has heavier optional dependencies).
    try:
        serve_settings = importlib.import_module("lagscope.serve.settings")
        resolved = serve_settings.resolve({}, serve_settings.Host.current())
        return math.floor(float(resolved.values["channel_timeout"]))
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return _SERVER_IDLE_TIMEOUT_FALLBACK_S


SERVER_IDLE_TIMEOUT_S: int = _server_idle_timeout_s()

DEFAULT_LISTEN = "localhost:8080"


def _s(unit: str, directive: str, reason: str, minimum: int = 1) -> dict[str, Any]:
    return {"unit": unit, "directive": directive, "reason": reason, "minimum": minimum}


@dataclass(frozen=True)
class NginxSettings:
    """Every tunable value in the generated config. Defaults are the recommended ones."""

    # --- the upstream pool (nginx -> app server) -----------------------------------------
    upstream_keepalive: int = field(
        default=16,
        metadata=_s(
            "connections",
            "keepalive",
            "Idle upstream connections each worker keeps open. It must cover the requests in "
            "flight at once (the app's thread count, 4 by default, with room to spare); any "
            "request beyond it opens a new connection and pays the per-connection tax. "
            "0 disables the pool (not recommended).",
            minimum=0,
        ),
    )
    upstream_keepalive_timeout_s: int = field(
        default=60,
        metadata=_s(
            "s",
            "keepalive_timeout (upstream)",
            "How long an idle pooled connection is kept. It must stay below the app server's "
            "idle timeout (waitress channel_timeout) so nginx, not the server, closes idle "
            "connections: a connection the server closed while nginx reused it fails a "
            "non-idempotent request with a 502.",
        ),
    )
    upstream_keepalive_requests: int = field(
        default=10000,
        metadata=_s(
            "requests",
            "keepalive_requests (upstream)",
            "Requests served on one pooled connection before nginx recycles it. Every "
            "recycle is a new connection that pays the tax; 10000 keeps that rare while "
            "still bounding per-connection memory.",
        ),
    )
    upstream_keepalive_time_s: int = field(
        default=3600,
        metadata=_s(
            "s",
            "keepalive_time (upstream)",
            "Maximum lifetime of a pooled connection, busy or not (nginx >= 1.19.10); an "
            "hour costs one reconnect per hour.",
        ),
    )
    # --- proxy timeouts (nginx waiting on the app server) --------------------------------
    proxy_connect_timeout_s: int = field(
        default=5,
        metadata=_s(
            "s",
            "proxy_connect_timeout",
            "The app server is on this machine or next to it: a connect that takes longer "
            "than a few seconds is a dead server, so fail fast with a 504 instead of 60 s.",
        ),
    )
    proxy_read_timeout_s: int = field(
        default=60,
        metadata=_s(
            "s",
            "proxy_read_timeout",
            "Longest gap between two reads of the response; bounds the slowest view you accept.",
        ),
    )
    proxy_send_timeout_s: int = field(
        default=60,
        metadata=_s(
            "s",
            "proxy_send_timeout",
            "Longest gap between two writes of the request to the app server.",
        ),
    )
    proxy_buffer_size_k: int = field(
        default=16,
        metadata=_s(
            "KiB",
            "proxy_buffer_size",
            "Buffer for the response headers (and first part of the body).",
        ),
    )
    proxy_buffers_count: int = field(
        default=16,
        metadata=_s(
            "buffers",
            "proxy_buffers",
            "Number of proxy_buffer_size buffers per request (16 x 16 KiB = 256 KiB): a "
            "typical JSON page (the reference app's is 94 KB) stays in memory instead of "
            "spilling to a temp file, and the app thread is freed as soon as it has written "
            "the response, however slow the client. At least 4: nginx needs the two busy "
            "buffers to be fewer than all buffers but one.",
            minimum=4,
        ),
    )
    # --- the client side (browser -> nginx) ----------------------------------------------
    client_keepalive_timeout_s: int = field(
        default=310,
        metadata=_s(
            "s",
            "keepalive_timeout",
            "Idle client connections are cheap for nginx; every new one pays the tax. Just "
            "above browsers' 300 s idle timeout, so the browser decides when to drop it.",
        ),
    )
    client_keepalive_requests: int = field(
        default=10000,
        metadata=_s(
            "requests",
            "keepalive_requests",
            "Requests on one client connection before nginx closes it; nginx's default of "
            "1000 would force a taxed reconnect every 1000 requests.",
        ),
    )
    client_header_timeout_s: int = field(
        default=10,
        metadata=_s(
            "s",
            "client_header_timeout",
            "nginx reads the whole request before it reaches the app, so a slow-header "
            "client holds an nginx connection (cheap), never a waitress slot (which has no "
            "header-read timeout); 10 s drops such clients early.",
        ),
    )
    client_body_timeout_s: int = field(
        default=30,
        metadata=_s(
            "s",
            "client_body_timeout",
            "Longest gap between two reads of a request body from the client.",
        ),
    )
    client_max_body_size_m: int = field(
        default=10,
        metadata=_s("MiB", "client_max_body_size", "Largest request body accepted (413 above)."),
    )
    # --- the worker --------------------------------------------------------------------
    worker_processes: int = field(
        default=1,
        metadata=_s(
            "processes",
            "worker_processes",
            "Each worker keeps its own upstream pool, so one worker means one warm pool "
            "(no request lands on a worker whose pool is still cold). One worker proxies "
            "thousands of requests per second, far more than a WSGI app behind it serves.",
        ),
    )
    worker_connections: int = field(
        default=1024,
        metadata=_s(
            "connections",
            "worker_connections",
            "Client plus upstream connections one worker may hold at once.",
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            minimum = int(f.metadata["minimum"])
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise LagscopeError(
                    "config",
                    f"{_flag(f.name)} must be an integer >= {minimum}, got {value!r}",
                    ExitCode.USAGE,
                )


@dataclass(frozen=True)
class SettingDoc:
    """One row of the settings table, for docs and ``--help``."""

    name: str
    flag: str
    default: int
    minimum: int
    unit: str
    directive: str
    reason: str


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def settings_table() -> tuple[SettingDoc, ...]:
    """The table as rows, in declaration order."""
    rows = []
    for f in dataclasses.fields(NginxSettings):
        meta: Any = f.metadata
        rows.append(
            SettingDoc(
                name=f.name,
                flag=_flag(f.name),
                default=int(cast(int, f.default)),
                minimum=int(meta["minimum"]),
                unit=str(meta["unit"]),
                directive=str(meta["directive"]),
                reason=str(meta["reason"]),
            )
        )
    return tuple(rows)


def check_consistency(settings: NginxSettings, server_idle_timeout_s: int) -> None:
    """Raise unless the upstream pool lets idle connections go before the server does."""
    if settings.upstream_keepalive and (
        settings.upstream_keepalive_timeout_s >= server_idle_timeout_s
    ):
        raise LagscopeError(
            "config",
            f"--upstream-keepalive-timeout-s ({settings.upstream_keepalive_timeout_s} s) must "
            f"be below the app server's idle timeout ({server_idle_timeout_s} s, waitress "
            "channel_timeout), or nginx may reuse a connection the server is closing",
            ExitCode.USAGE,
        )


@dataclass(frozen=True)
class Endpoint:
    """A host and port as nginx writes them (IPv6 literals in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# A host name nginx can take verbatim: no whitespace, quotes, braces or semicolons that
# would let an argument inject config.
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?$")


def parse_endpoint(text: str, what: str) -> Endpoint:
    """Parse ``HOST:PORT`` or ``[V6]:PORT``; raise a USAGE error naming ``what`` otherwise.

    A leading ``http://`` and a trailing ``/`` are accepted, so the URL ``lagscope serve``
    prints can be pasted as it is.
    """

    def bad(why: str) -> LagscopeError:
        return LagscopeError(what, f"{original!r} is not HOST:PORT ({why})", ExitCode.USAGE)

    original = text
    text = text.strip()
    if text.lower().startswith("http://"):
        text = text[len("http://") :].rstrip("/")
    if "://" in text:
        raise bad("nginx speaks plain HTTP to the app server; give HOST:PORT")
    if "/" in text:
        raise bad("no path allowed")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise bad("an IPv6 address needs the form [::1]:8000")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise bad("missing :PORT")
        if ":" in host:
            raise bad("write IPv6 addresses in brackets, e.g. [::1]:8000")
        if not _HOSTNAME_RE.match(host):
            raise bad("missing or invalid host")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise bad("port must be 1-65535")
    return Endpoint(host, int(port_text))


def expand_listen(endpoint: Endpoint) -> tuple[Endpoint, ...]:
    """``localhost`` means both loopbacks: a client that tries ::1 first must find a listener.

    On Windows a refused ::1 connect costs ~2 s and Chrome waits 300 ms before falling back
    to IPv4 (docs/ghosts, entry 2), so nginx listens on 127.0.0.1 and ::1 alike.
    """
    if endpoint.host.lower() == "localhost":
        return (Endpoint("127.0.0.1", endpoint.port), Endpoint("::1", endpoint.port))
    return (endpoint,)


def upstream_server(endpoint: Endpoint) -> Endpoint:
    """The address written in the ``upstream`` block.

    nginx resolves a name once at start and round-robins over *every* address it gets, so
    ``localhost`` would become two servers (127.0.0.1 and ::1) with two half-warm pools, one
    of them possibly refusing. Loopback is spelled as one address instead.
    """
    if endpoint.host.lower() == "localhost":
        return Endpoint("127.0.0.1", endpoint.port)
    return endpoint

"""The nginx settings table: every value ``lagscope nginx-config`` writes, with unit and reason.

This module owns the one commented table (in the spirit of waitress's ``adjustments.py``)
from which the rendered config, the CLI flags and docs/nginx.md all derive, plus the pure
parsing and validation of the command's inputs (``HOST:PORT`` endpoints, the timeout
consistency rule). No I/O.

The table is the frozen dataclass :class:`NginxSettings`, declared with
:mod:`lagscope.settings_table`: each row carries its unit, bounds, the nginx directive it
feeds and the reason for its default, so the CLI builds one flag per row and
:func:`docs_table` the table of docs/nginx.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.addresses import AddressError, format_host_port, parse_host_port
from lagscope.errors import ExitCode, LagscopeError
from lagscope.settings_table import (
    JUST_ABOVE_BROWSER_IDLE_S,
    SettingsError,
    markdown,
    setting,
    validate,
)

__all__ = [
    "DEFAULT_LISTEN",
    "SERVER_IDLE_TIMEOUT_S",
    "AppServer",
    "Endpoint",
    "NginxSettings",
    "check_consistency",
    "docs_table",
    "expand_listen",
    "parse_endpoint",
    "upstream_server",
]

# The upstream server's idle timeout (waitress ``channel_timeout``) that the nginx upstream
# pool must stay below: ``lagscope serve``'s default, from the constant both tables share
# (a test checks serve's resolved default against it).
SERVER_IDLE_TIMEOUT_S: int = JUST_ABOVE_BROWSER_IDLE_S

DEFAULT_LISTEN = "localhost:8080"

# nginx keeps times as 32-bit milliseconds; `nginx -t` refuses anything longer.
_NGINX_MAX_S = 2147483


def _s(
    default: int,
    unit: str,
    directive: str,
    reason: str,
    minimum: int = 1,
    maximum: int | None = None,
) -> int:
    first = reason.split(". ")[0].rstrip(".")
    return setting(
        default,
        help=f"[{unit}] nginx {directive}. {first}.",
        unit=unit,
        why=reason,
        minimum=minimum,
        maximum=_NGINX_MAX_S if maximum is None and unit == "s" else maximum,
        extra={"directive": directive},
    )


@dataclass(frozen=True)
class NginxSettings:
    """Every tunable value in the generated config. Defaults are the recommended ones."""

    # --- the upstream pool (nginx -> app server) -----------------------------------------
    upstream_keepalive: int = _s(
        16,
        "connections",
        "keepalive",
        "Idle upstream connections each worker keeps open. It must cover the requests in "
        "flight at once (the app's thread count, 2 to 8 under `lagscope serve`, with room "
        "to spare); any request beyond it opens a new connection and pays the "
        "per-connection tax. 0 disables the pool (not recommended).",
        minimum=0,
        maximum=65535,
    )
    upstream_keepalive_timeout_s: int = _s(
        60,
        "s",
        "keepalive_timeout (upstream)",
        "How long an idle pooled connection is kept. It must stay below the app server's "
        "idle timeout (waitress channel_timeout) so nginx, not the server, closes idle "
        "connections: a connection the server closed while nginx reused it fails a "
        "non-idempotent request with a 502.",
    )
    upstream_keepalive_requests: int = _s(
        10000,
        "requests",
        "keepalive_requests (upstream)",
        "Requests served on one pooled connection before nginx recycles it. Every "
        "recycle is a new connection that pays the tax; 10000 keeps that rare while "
        "still bounding per-connection memory.",
    )
    upstream_keepalive_time_s: int = _s(
        3600,
        "s",
        "keepalive_time (upstream)",
        "Maximum lifetime of a pooled connection, busy or not (nginx >= 1.19.10); an "
        "hour costs one reconnect per hour.",
    )
    # --- proxy timeouts (nginx waiting on the app server) --------------------------------
    proxy_connect_timeout_s: int = _s(
        5,
        "s",
        "proxy_connect_timeout",
        "The app server is on this machine or next to it: a connect that takes longer "
        "than a few seconds is a dead server, so fail fast with a 504 instead of 60 s.",
    )
    proxy_read_timeout_s: int = _s(
        60,
        "s",
        "proxy_read_timeout",
        "Longest gap between two reads of the response; bounds the slowest view you accept.",
    )
    proxy_send_timeout_s: int = _s(
        60,
        "s",
        "proxy_send_timeout",
        "Longest gap between two writes of the request to the app server.",
    )
    proxy_buffer_size_k: int = _s(
        16,
        "KiB",
        "proxy_buffer_size",
        "Buffer for the response headers (and first part of the body).",
        maximum=1048576,
    )
    proxy_buffers_count: int = _s(
        16,
        "buffers",
        "proxy_buffers",
        "Number of proxy_buffer_size buffers per request (16 x 16 KiB = 256 KiB): a "
        "typical JSON page (the reference app's is 94 KB) stays in memory instead of "
        "spilling to a temp file, and the app thread is freed as soon as it has written "
        "the response, however slow the client. At least 4: nginx needs the two busy "
        "buffers to be fewer than all buffers but one.",
        minimum=4,
        maximum=1024,
    )
    # --- the client side (browser -> nginx) ----------------------------------------------
    client_keepalive_timeout_s: int = _s(
        JUST_ABOVE_BROWSER_IDLE_S,
        "s",
        "keepalive_timeout",
        "Idle client connections are cheap for nginx; every new one pays the tax. Just "
        "above browsers' 300 s idle timeout, so the browser decides when to drop it.",
    )
    client_keepalive_requests: int = _s(
        10000,
        "requests",
        "keepalive_requests",
        "Requests on one client connection before nginx closes it; nginx's default of "
        "1000 would force a taxed reconnect every 1000 requests.",
    )
    client_header_timeout_s: int = _s(
        10,
        "s",
        "client_header_timeout",
        "nginx reads the whole request before it reaches the app, so a slow-header "
        "client holds an nginx connection (cheap), never a waitress slot (which has no "
        "header-read timeout); 10 s drops such clients early.",
    )
    client_body_timeout_s: int = _s(
        30,
        "s",
        "client_body_timeout",
        "Longest gap between two reads of a request body from the client.",
    )
    client_max_body_size_m: int = _s(
        10, "MiB", "client_max_body_size", "Largest request body accepted (413 above)."
    )
    # --- the worker --------------------------------------------------------------------
    worker_processes: int = _s(
        1,
        "processes",
        "worker_processes",
        "Each worker keeps its own upstream pool, so one worker means one warm pool "
        "(no request lands on a worker whose pool is still cold). One worker proxies "
        "thousands of requests per second, far more than a WSGI app behind it serves.",
        maximum=1024,
    )
    worker_connections: int = _s(
        1024,
        "connections",
        "worker_connections",
        "Client plus upstream connections one worker may hold at once.",
        maximum=1048576,
    )

    def __post_init__(self) -> None:
        validate(self)


def docs_table() -> str:
    """The settings table of docs/nginx.md."""
    columns = [
        ("flag", "flag"),
        ("default", "value"),
        ("unit", "unit"),
        ("range", "range"),
        ("nginx directive", "directive"),
        ("why", "why"),
    ]
    return markdown(NginxSettings, AppServer, columns=columns)


@dataclass(frozen=True)
class AppServer:
    """What the config must agree with in the app server behind nginx (no nginx directive)."""

    server_idle_timeout_s: int = setting(
        SERVER_IDLE_TIMEOUT_S,
        flag="--server-idle-timeout-s",
        unit="s",
        help="The app server's idle timeout (waitress channel_timeout); the upstream "
        "keep-alive timeout must stay below it. Defaults to `lagscope serve`'s.",
        why="`lagscope serve`'s channel_timeout, just above browsers' 300 s idle timeout",
        minimum=1,
    )

    def __post_init__(self) -> None:
        validate(self)


def check_consistency(settings: NginxSettings, server_idle_timeout_s: int) -> None:
    """Raise unless the upstream pool lets idle connections go before the server does."""
    if settings.upstream_keepalive and (
        settings.upstream_keepalive_timeout_s >= server_idle_timeout_s
    ):
        raise SettingsError(
            f"--upstream-keepalive-timeout-s ({settings.upstream_keepalive_timeout_s} s) must "
            f"be below the app server's idle timeout ({server_idle_timeout_s} s, waitress "
            "channel_timeout), or nginx may reuse a connection the server is closing"
        )


@dataclass(frozen=True)
class Endpoint:
    """A host and port as nginx writes them (IPv6 literals in brackets)."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def parse_endpoint(text: str, what: str) -> Endpoint:
    """Parse ``HOST:PORT`` or ``[V6]:PORT``; raise a USAGE error naming ``what`` otherwise.

    A leading ``http://`` and a trailing ``/`` are accepted, so the URL ``lagscope serve``
    prints can be pasted as it is. Host names are checked against the characters nginx
    takes verbatim, so an argument cannot inject config.
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
    try:
        host, port = parse_host_port(text, min_port=1)
    except AddressError as exc:
        raise bad(str(exc)) from None
    return Endpoint(host, port)


def expand_listen(endpoint: Endpoint) -> tuple[Endpoint, ...]:
    """``localhost`` means both loopbacks: a client that tries ::1 first must find a listener.

    On Windows a refused ::1 connect costs ~2 s and Chrome waits 300 ms before falling back
    to IPv4 (docs/diagnose.md, `localhost-fallback`), so nginx listens on 127.0.0.1 and ::1
    alike.
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

"""What the ladder measured, as plain frozen values the rules read. Pure.

Each rung of the ladder fills one of these records; :class:`Evidence` holds them all.
The helpers below read one request's Server-Timing (ours or anyone's ``total``) and
compute the figures several rules and the budget share, so each is computed one way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lagscope.browser.model import BrowserRun
from lagscope.diagnose.model import Environment, Figure
from lagscope.instrument.profile import Profile
from lagscope.instrument.record import parse_dbshapes
from lagscope.probe.model import RequestRecord
from lagscope.probe.stats import Summary, summarize

__all__ = [
    "AddressProbe",
    "ColdWarm",
    "DatabaseProbe",
    "Evidence",
    "Hygiene",
    "ProfileProbe",
    "QueueLevel",
    "RedirectHop",
    "Resolution",
    "SetupSplit",
    "Warmup",
    "app_ms",
    "count_in_desc",
    "figure",
    "metric_desc",
    "metric_ms",
    "outside_app_ms",
    "own_app_ms",
    "proxy_server",
    "requests_before_close",
    "summary_of",
    "trusted_detail",
]


@dataclass(frozen=True)
class AddressProbe:
    """Connect attempts to one address of the host, in the order the client tries them."""

    address: str
    family: str
    outcomes: tuple[str, ...]
    connect_ms: tuple[float, ...]

    @property
    def connects(self) -> bool:
        return "connected" in self.outcomes


@dataclass(frozen=True)
class Resolution:
    host: str
    is_name: bool  # not an IP literal
    source: str  # "dns" | "pinned" | "localhost" (probe.model.RESOLVE_SOURCES)
    resolve_ms: tuple[float, ...]
    addresses: tuple[AddressProbe, ...]
    # A whole connect through the address list, as a sequential client makes it.
    hostname_connect_ms: tuple[float, ...]
    # Loopback addresses of the other family that refuse (a server listening on one family
    # only), found for names that resolve to loopback.
    unlistened: tuple[str, ...] = ()


@dataclass(frozen=True)
class Warmup:
    """The first requests of the run, in order, then a concurrent burst."""

    sequence: tuple[RequestRecord, ...]
    burst: tuple[RequestRecord, ...]


@dataclass(frozen=True)
class ColdWarm:
    cold: tuple[RequestRecord, ...]
    warm: tuple[RequestRecord, ...]
    warm_first: tuple[RequestRecord, ...]
    keep_alive: bool
    keep_alive_reason: str | None
    # Requests sent back to back on one kept-alive connection, as a browser fetches a
    # page's assets: the paced warm series lets the peer's delayed ACK fire in between.
    back_to_back: tuple[RequestRecord, ...] = ()


@dataclass(frozen=True)
class SetupSplit:
    """Experiments that separate a per-connection cost from the app's time when neither
    Server-Timing nor a reused connection can: each on a fresh connection."""

    # Connect, send the request's first byte, stay idle ``idle_ms``, then send the rest: a
    # cost paid while the connection is set up, or for its first bytes (stream
    # inspection), is absorbed by the idle time; the app's time is not.
    idle_ms: float
    idle: tuple[RequestRecord, ...]
    # A request for a page that does not exist: what a request that does no work waits,
    # each on a fresh connection, and on one kept-alive connection (when the server keeps
    # connections, only these run: they separate time outside the page's work on every
    # request from the page's own).
    cheap_path: str
    cheap: tuple[RequestRecord, ...]
    cheap_reused: tuple[RequestRecord, ...] = ()


@dataclass(frozen=True)
class QueueLevel:
    clients: int
    records: tuple[RequestRecord, ...]


@dataclass(frozen=True)
class DatabaseProbe:
    shown_dsn: str  # never with a password
    connect_ms: tuple[float, ...]
    select1_ms: tuple[float, ...]
    gss_attempted: bool
    gss_disabled_connect_ms: tuple[float, ...]
    error: str | None = None
    # New sessions PostgreSQL counted per request of the cold/warm rung (None: unknown).
    sessions_per_request: float | None = None


@dataclass(frozen=True)
class RedirectHop:
    url: str
    status: int
    location: str
    ms: float


@dataclass(frozen=True)
class Hygiene:
    redirects: tuple[RedirectHop, ...]
    content_type: str | None
    content_encoding: str | None
    body_bytes: int
    compressed_bytes: int | None  # gzip level 6 of the body, when it is text
    receive_ms: float
    # Why the chain was not followed to a page, when it was not: "loop", "too many",
    # "bad location" (not an http(s) URL) or "no answer" (the next hop did not answer).
    # None when it ended on a page, or on a redirect to another host (not followed).
    redirect_stop: str | None = None


@dataclass(frozen=True)
class ProfileProbe:
    """Profiled requests (``X-Lagscope-Profile: 1``), sent when the app's own work or its
    queries were found slow. ``profile`` is the slowest request's, or None with ``reason``
    (one line: why there is none)."""

    requests: int
    profile: Profile | None = None
    reason: str | None = None
    # What the profiled request took at the client (the profiler slows it down).
    request_ms: float | None = None


@dataclass(frozen=True)
class Evidence:
    url: str
    loopback: bool
    environment: Environment
    resolution: Resolution | None = None
    warmup: Warmup | None = None
    coldwarm: ColdWarm | None = None
    queue: tuple[QueueLevel, ...] = ()
    direct: ColdWarm | None = None
    database: DatabaseProbe | None = None
    hygiene: Hygiene | None = None
    setup_split: SetupSplit | None = None
    proxy_server: str | None = None  # a Server / Via header naming a proxy
    # Kept-alive connections the server closed without Connection: close, found by the
    # next request on them (retried on a new connection): (requests the connection had
    # carried, or -1 where the cold/warm rung only counted it; seconds it had been idle).
    silent_closes: tuple[tuple[int, float], ...] = ()
    # Kept-alive connections the server closed with Connection: close after more than one
    # response (a request limit): the requests each carried.
    closed_after: tuple[int, ...] = ()
    # Seconds a kept-alive connection left idle through the run sat before the server closed
    # it (the idle watch); None when it stayed open, or was not watched.
    idle_closed_after_s: float | None = None
    # https only: what the server picked when offered h2 and http/1.1 (ALPN), as a browser
    # offers them; "" when it picked none (HTTP/1.1 then), None for http:// or not measured.
    alpn: str | None = None
    browser: BrowserRun | None = None  # a real browser's loads (--browser)
    # The command that reruns this diagnosis (each finding's "confirm").
    command: str = ""
    profile: ProfileProbe | None = None


# --- reading one request ------------------------------------------------------------------

_COUNT = re.compile(r"(\d+)")


def metric_ms(r: RequestRecord, name: str) -> float | None:
    """The summed duration of a Server-Timing metric in one response, if present."""
    total: float | None = None
    for m in r.server_timing:
        if m.name == name and m.dur_ms is not None:
            total = (total or 0.0) + m.dur_ms
    return total


def metric_desc(r: RequestRecord, name: str) -> str | None:
    for m in r.server_timing:
        if m.name == name:
            return m.desc if m.desc is not None else ""
    return None


def count_in_desc(desc: str | None) -> int | None:
    """The leading count of a desc such as "3 queries" or "1 connect"."""
    if not desc:
        return None
    m = _COUNT.match(desc.strip())
    return int(m.group(1)) if m else None


# Metrics lagscope's middleware sends only to a client it trusts (docs/server-timing.md).
_DETAIL = ("total", "thread")


def trusted_detail(r: RequestRecord) -> bool:
    """Whether this response carries lagscope's detailed Server-Timing (``total`` and
    ``thread``): the server trusts this client, so it may be asked for a profile."""
    names = {m.name for m in r.server_timing}
    return all(name in names for name in _DETAIL)


def app_ms(r: RequestRecord) -> float | None:
    return r.app_ms()


def own_app_ms(r: RequestRecord) -> float | None:
    """The app's time without the database connects it made (those have their own rules)."""
    app = r.app_ms()
    if app is None:
        return None
    return max(0.0, app - (metric_ms(r, "dbconn") or 0.0))


def outside_app_ms(r: RequestRecord) -> float | None:
    """Time to first byte not spent in the app (nor in a proxy's reported queue)."""
    app = r.app_ms()
    if app is None:
        return None
    return r.wait_ms - app


def shapes(r: RequestRecord) -> tuple[int, int] | None:
    return parse_dbshapes(metric_desc(r, "dbshapes"))


def summary_of(values: Iterable[float | None]) -> Summary | None:
    got = [v for v in values if v is not None]
    return summarize(got) if got else None


def figure(name: str, s: Summary | None, unit: str = "ms") -> Figure:
    """A median with its interval, as a report figure."""
    if s is None:
        return Figure(name, None, unit)
    return Figure(name, round(s.p50_ms, 3), unit, round(s.ci_low_ms, 3), round(s.ci_high_ms, 3))


def share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


# Server header words that name a reverse proxy rather than an app server.
_PROXY_NAMES = ("nginx", "apache", "caddy", "envoy", "haproxy", "traefik", "iis")


def proxy_server(records: Iterable[RequestRecord]) -> str | None:
    """A ``Via`` header, or a ``Server`` header naming a reverse proxy, as shown."""
    for r in records:
        via = r.header("via")
        if via:
            return f"Via: {via}"
        server = (r.header("server") or "").lower()
        if any(name in server for name in _PROXY_NAMES):
            return f"Server: {r.header('server')}"
    return None


def requests_before_close(records: Iterable[RequestRecord]) -> tuple[int, ...]:
    """For each kept-alive connection the server closed with Connection: close after more
    than one response: the requests it carried (a request limit, not keep-alive refused).
    ``records`` in run order; a request that was not reused starts a new connection, and a
    connection whose start was not recorded is not counted."""
    carried: dict[int, int] = {}
    out: list[int] = []
    for r in records:
        if r.reused and r.connection not in carried:
            continue  # a connection whose first requests were not recorded: count unknown
        count = 1 if not r.reused else carried[r.connection] + 1
        carried[r.connection] = count
        if not r.keep_alive:
            if count > 1:
                out.append(count)
            del carried[r.connection]
    return tuple(out)

"""What a probe run is asked to do: the validated, frozen options. Pure; no I/O.

Parsing user input (URL, ``-H`` headers, ``--resolve`` pins) lives here so that every
rejection is a :class:`~lagscope.errors.LagscopeError` with exit code 2 before any socket
is opened. The defaults and bounds below are the probe's settings table.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urlsplit

from lagscope.addresses import is_localhost_name, is_loopback_literal
from lagscope.errors import ExitCode, LagscopeError
from lagscope.gate import Gate
from lagscope.settings_table import SettingsError, markdown, setting, validate

__all__ = [
    "REMOTE_RATE_PER_S",
    "Gate",
    "ProbeOptions",
    "Target",
    "check_header",
    "check_method",
    "docs_table",
    "is_loopback_host",
    "parse_family",
    "parse_header",
    "parse_resolve",
    "parse_url",
]


# Requests per second to hosts that are not loopback (politeness); loopback is unpaced.
# The default of --rate where it applies (ProbeOptions.rate_per_s is None).
REMOTE_RATE_PER_S = 5.0


@dataclass(frozen=True)
class Target:
    """A parsed URL."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    target: str  # path + query, as sent on the request line
    url: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


_PHASE = "options"


@dataclass(frozen=True)
class ProbeOptions:
    """A probe run, validated whole here, so the Python API refuses what the CLI refuses.

    The numeric rows are the probe's settings table (:mod:`lagscope.settings_table`: the
    CLI flags, their bounds and the table in docs/probe.md come from them).
    """

    target: Target
    cold: int = setting(
        20,
        help="Requests each on a new TCP connection.",
        why="enough for a median interval at 95 % (needs ≥ 6) with room",
        minimum=0,
        maximum=1000,
    )
    warm: int = setting(
        50,
        help="Requests on one keep-alive connection, after its own first request.",
        why="reused-connection requests; the connection's first request is its own series",
        minimum=0,
        maximum=10000,
    )
    method: str = setting(
        "GET",
        short="-X",
        help="HTTP method.",
        why="what a browser sends for a page; any token is accepted (HEAD, POST with -d)",
    )
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout_s: float = setting(
        10.0,
        flag="--timeout",
        unit="s",
        help="Timeout per phase, seconds.",
        why="long enough for a 2 s Windows IPv6 fallback, short enough that a dead server "
        "is reported while the user still watches",
        above=0,
        maximum=3600,
    )
    max_time_s: float = setting(
        120.0,
        flag="--max-time",
        unit="s",
        help="Bound on the whole run, seconds; stops early and says so.",
        why="every run is bounded in time, whatever the server does",
        above=0,
        maximum=3600,
    )
    max_body_bytes: int = setting(
        16 * 1024 * 1024,
        flag="--max-body",
        unit="bytes",
        shown="16 MiB",
        help="Largest response body accepted, bytes.",
        why="a probe measures latency, it does not download files",
        minimum=0,
    )
    # AF_UNSPEC (both), AF_INET (-4) or AF_INET6 (-6).
    family: socket.AddressFamily = socket.AF_UNSPEC
    verify_tls: bool = True
    # Extra CA bundle (PEM) to trust, for internal CAs and self-signed test servers.
    cafile: str | None = None
    # host (lower-case) -> addresses tried in this order, like curl --resolve.
    resolve: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    # None means unpaced on loopback and REMOTE_RATE_PER_S elsewhere.
    rate_per_s: float | None = setting(
        None,
        flag="--rate",
        unit="/s",
        shown=f"unpaced on loopback, {REMOTE_RATE_PER_S:g}/s elsewhere",
        help="Requests per second.",
        why="politeness towards hosts that are not this machine; 0.001/s is one request "
        "per 1000 s, and slower pacing could not fit even a short run in --max-time",
        minimum=0.001,
    )

    def __post_init__(self) -> None:
        validate(self, phase=_PHASE)
        if self.cold == 0 and self.warm == 0:
            raise SettingsError("nothing to measure: --cold and --warm are both 0", _PHASE)
        check_method(self.method)
        for name, value in self.headers:
            check_header(name, value)
        if self.family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
            raise SettingsError("family must be AF_UNSPEC, AF_INET or AF_INET6", _PHASE)

    def pinned(self, host: str) -> tuple[str, ...] | None:
        for name, addresses in self.resolve:
            if name == host.lower():
                return addresses
        return None


def docs_table() -> str:
    """The settings table of docs/probe.md."""
    return markdown(ProbeOptions, Gate)


# Compiled on first use (re caches it): only -H headers need it, and compiling at import
# cost every run ~0.1 ms.
_TOKEN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"


def parse_url(url: str) -> Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LagscopeError("url", f"invalid URL {url!r}: {exc}", ExitCode.USAGE) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = scheme or "none"
        raise LagscopeError(
            "url", f"unsupported scheme {shown!r} in {url!r} (use http or https)", ExitCode.USAGE
        )
    host = parts.hostname
    if not host:
        raise LagscopeError("url", f"no host in {url!r}", ExitCode.USAGE)
    if any(c.isspace() for c in url):
        raise LagscopeError("url", f"invalid URL {url!r}: contains white space", ExitCode.USAGE)
    if any(c < " " or "\x7f" <= c <= "\x9f" for c in url):
        # RFC 3986 has no place for them, and they would reach the terminal in every line
        # that shows the URL.
        raise LagscopeError(
            "url", f"invalid URL {url!a}: contains control characters", ExitCode.USAGE
        )
    # Request targets are ASCII on the wire: percent-encode what a user typed as Unicode
    # (browsers do the same), leaving existing escapes and reserved characters alone.
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    if port is None:
        port = 443 if scheme == "https" else 80
    return Target(
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port,
        target=target,
        url=url,
    )


def check_method(method: str) -> None:
    if not (method.isascii() and method.isalpha() and method.isupper()):
        raise SettingsError(f"invalid method {method!r}", _PHASE)
    if method == "CONNECT":
        # CONNECT turns the connection into a tunnel: there is no response body to time.
        raise SettingsError("CONNECT is not supported", _PHASE)


def check_header(name: str, value: str) -> None:
    if not re.match(_TOKEN, name):
        raise SettingsError(f"invalid header name {name!r}", _PHASE)
    if not value.isascii() or any((c < " " and c != "\t") or c == "\x7f" for c in value):
        raise SettingsError(
            f"header {name!r}: value must be printable ASCII (encode it first)", _PHASE
        )
    if name.lower() in ("content-length", "transfer-encoding"):
        # The probe frames the body itself; a user-set length could only be wrong.
        raise SettingsError(f"header {name!r} is set by the probe from the body", _PHASE)


def parse_family(ipv4: bool, ipv6: bool) -> socket.AddressFamily:
    """The address family of ``-4`` / ``-6`` (neither: both families)."""
    if ipv4 and ipv6:
        raise LagscopeError("options", "-4 and -6 exclude each other", ExitCode.USAGE)
    return socket.AF_INET if ipv4 else socket.AF_INET6 if ipv6 else socket.AF_UNSPEC


def parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    name = name.strip()
    if not sep or not re.match(_TOKEN, name):
        raise LagscopeError(
            "options", f"invalid header {raw!r} (expected 'Name: value')", ExitCode.USAGE
        )
    value = value.strip()
    check_header(name, value)
    return name, value


def _parse_address(raw: str) -> str:
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise LagscopeError(
            "options", f"--resolve: {raw!r} is not an IP address", ExitCode.USAGE
        ) from None


def parse_resolve(raw: str) -> tuple[str, tuple[str, ...]]:
    """``host:addr[,addr...]`` or curl's ``host:port:addr[,addr...]``; IPv6 may be bracketed.

    The port, when given, is accepted for curl compatibility and ignored: a pin applies to
    the host name whatever the port.
    """
    host, sep, rest = raw.partition(":")
    if not sep or not host or not rest:
        raise LagscopeError(
            "options", f"--resolve {raw!r}: expected HOST:ADDRESS[,ADDRESS...]", ExitCode.USAGE
        )
    m = re.match(r"^(\d{1,5}):(?=[\[\d])", rest)
    if m and not rest.startswith(m.group(1) + "::"):
        rest = rest[m.end() :]
    addresses = tuple(_parse_address(a) for a in rest.split(",") if a.strip())
    if not addresses:
        raise LagscopeError("options", f"--resolve {raw!r}: no address", ExitCode.USAGE)
    return host.lower(), addresses


def is_loopback_host(host: str, pinned: tuple[str, ...] | None = None) -> bool:
    """True when every address the probe could reach for ``host`` is loopback. No DNS.

    Only literal addresses, pins and ``localhost`` names count; any other name could
    resolve anywhere, so it is treated as remote (and paced).
    """
    if pinned:
        return all(is_loopback_literal(a) for a in pinned)
    return is_localhost_name(host) or is_loopback_literal(host)

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
from urllib.parse import quote, urlsplit

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "DEFAULTS",
    "LIMITS",
    "ProbeOptions",
    "Target",
    "is_loopback_host",
    "parse_header",
    "parse_resolve",
    "parse_url",
]


@dataclass(frozen=True)
class _Defaults:
    # New-connection requests: enough for a median interval at 95 % (needs ≥ 6) with room.
    cold: int = 20
    # Reused-connection requests, after the connection's own first request.
    warm: int = 50
    # Per-phase timeout, seconds: long enough for a 2 s Windows IPv6 fallback, short
    # enough that a dead server is reported while the user still watches.
    timeout_s: float = 10.0
    # Wall-clock bound for the whole run, seconds; the run stops and says so when reached.
    max_time_s: float = 120.0
    # Body cap, bytes: a probe measures latency, it does not download files.
    max_body_bytes: int = 16 * 1024 * 1024
    # Requests per second to hosts that are not loopback (politeness); loopback is unpaced.
    remote_rate_per_s: float = 5.0


@dataclass(frozen=True)
class _Limits:
    # Upper bounds on what a user can ask for, so every run is bounded in count.
    max_cold: int = 1000
    max_warm: int = 10000
    max_time_s: float = 3600.0


DEFAULTS = _Defaults()
LIMITS = _Limits()


@dataclass(frozen=True)
class Target:
    """A parsed URL."""

    scheme: str
    host: str
    port: int
    target: str  # path + query, as sent on the request line
    url: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class ProbeOptions:
    target: Target
    cold: int = DEFAULTS.cold
    warm: int = DEFAULTS.warm
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout_s: float = DEFAULTS.timeout_s
    max_time_s: float = DEFAULTS.max_time_s
    max_body_bytes: int = DEFAULTS.max_body_bytes
    # socket.AF_UNSPEC, AF_INET or AF_INET6.
    family: int = socket.AF_UNSPEC
    verify_tls: bool = True
    # Extra CA bundle (PEM) to trust, for internal CAs and self-signed test servers.
    cafile: str | None = None
    # host (lower-case) -> addresses tried in this order, like curl --resolve.
    resolve: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())
    # Requests per second; None means unpaced. Set from DEFAULTS for non-loopback targets.
    rate_per_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.cold <= LIMITS.max_cold:
            raise LagscopeError("options", f"--cold must be 0..{LIMITS.max_cold}", ExitCode.USAGE)
        if not 0 <= self.warm <= LIMITS.max_warm:
            raise LagscopeError("options", f"--warm must be 0..{LIMITS.max_warm}", ExitCode.USAGE)
        if self.cold == 0 and self.warm == 0:
            raise LagscopeError(
                "options", "nothing to measure: --cold and --warm are both 0", ExitCode.USAGE
            )
        if not 0 < self.timeout_s <= LIMITS.max_time_s:
            raise LagscopeError("options", "--timeout must be > 0 s", ExitCode.USAGE)
        if not 0 < self.max_time_s <= LIMITS.max_time_s:
            raise LagscopeError(
                "options", f"--max-time must be 0..{LIMITS.max_time_s:g} s", ExitCode.USAGE
            )
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise LagscopeError("options", "--rate must be > 0", ExitCode.USAGE)

    def pinned(self, host: str) -> tuple[str, ...] | None:
        for name, addresses in self.resolve:
            if name == host.lower():
                return addresses
        return None


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


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
    # Request targets are ASCII on the wire: percent-encode what a user typed as Unicode
    # (browsers do the same), leaving existing escapes and reserved characters alone.
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    if port is None:
        port = 443 if scheme == "https" else 80
    return Target(scheme=scheme, host=host, port=port, target=target, url=url)


def parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    name = name.strip()
    if not sep or not _TOKEN.match(name):
        raise LagscopeError(
            "options", f"invalid header {raw!r} (expected 'Name: value')", ExitCode.USAGE
        )
    value = value.strip()
    if not value.isascii() or any((c < " " and c != "\t") or c == "\x7f" for c in value):
        raise LagscopeError(
            "options",
            f"header {name!r}: value must be printable ASCII (encode it first)",
            ExitCode.USAGE,
        )
    if name.lower() in ("content-length", "transfer-encoding"):
        # The probe frames the body itself; a user-set length could only be wrong.
        raise LagscopeError(
            "options", f"header {name!r} is set by the probe from the body", ExitCode.USAGE
        )
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
    """True when every address the probe could reach for ``host`` is loopback.

    Only literal addresses, pins and the name ``localhost`` count; any other name could
    resolve anywhere, so it is treated as remote (and paced).
    """
    if pinned:
        return all(ipaddress.ip_address(a).is_loopback for a in pinned)
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

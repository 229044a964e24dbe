"""Host and port rules shared by every command: ``HOST:PORT`` parsing and what counts as
loopback.

The loopback functions say in their names whether DNS is involved:

* :func:`is_loopback_literal`: an IP literal in 127.0.0.0/8 or ::1 (IPv4-mapped included);
  no name is ever loopback here, and nothing is resolved;
* :func:`is_localhost_name`: ``localhost`` or a name under ``.localhost`` (RFC 6761, which
  resolvers must answer with loopback), also without resolving;
* :func:`resolves_to_loopback`: asks the resolver (passed in, for tests) and is true only
  when every address it returns is loopback.

Pure apart from the default resolver of :func:`resolves_to_loopback`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence

__all__ = [
    "AddressError",
    "Resolver",
    "format_host_port",
    "is_localhost_name",
    "is_loopback_literal",
    "parse_host_port",
    "resolves_to_loopback",
]

# A host name as a config file or a command line may carry it verbatim: letters, digits,
# dots, dashes, underscores; no whitespace, quotes, braces or semicolons that could inject
# config (nginx) or confuse a resolver.
# Compiled on first use (re caches it), not at import: most commands never check a name.
_HOSTNAME = r"^[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?$"


class AddressError(ValueError):
    """Why a ``HOST:PORT`` text was refused (callers wrap it into their own error line)."""


def parse_host_port(
    text: str, *, empty_host: str | None = None, min_port: int = 0
) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` into (host, port); the host comes back unbracketed.

    ``:PORT`` means ``empty_host`` when given and is refused otherwise. Ports run from
    ``min_port`` to 65535. Raises :class:`AddressError` with the reason.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError("an IPv6 address needs the form [::1]:8000")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise AddressError("missing :PORT")
        if ":" in host:
            raise AddressError("write IPv6 addresses in brackets, e.g. [::1]:8000")
        if not host and empty_host is not None:
            host = empty_host
        elif not re.match(_HOSTNAME, host):
            raise AddressError("missing or invalid host")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise AddressError(f"port must be {min_port}-65535")
    port = int(port_text)
    if not min_port <= port <= 65535:
        raise AddressError(f"port must be {min_port}-65535")
    return host, port


def format_host_port(host: str, port: int) -> str:
    """The inverse of :func:`parse_host_port`: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.lru_cache(maxsize=1024)
def is_loopback_literal(host: str) -> bool:
    """True for an IP literal in 127.0.0.0/8 or ::1, IPv4-mapped loopback included, with or
    without brackets or a zone; False for names (``localhost`` too) and anything unparsable.
    No DNS."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_localhost_name(host: str) -> bool:
    """``localhost`` or ``*.localhost``: names resolvers must map to loopback (RFC 6761
    section 6.3). No DNS."""
    name = host.strip().rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


Resolver = Callable[[str], Sequence[str]]


def _getaddrinfo(host: str) -> Sequence[str]:
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolves_to_loopback(host: str, resolve: Resolver = _getaddrinfo) -> bool:
    """True when ``host`` is a loopback literal, or every address ``resolve`` returns for it
    is loopback. A name that does not resolve is not loopback. Uses DNS for names."""
    if is_loopback_literal(host):
        return True
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    else:
        return False  # a literal that is not loopback; nothing to resolve
    try:
        addresses = resolve(host)
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(is_loopback_literal(a) for a in addresses)

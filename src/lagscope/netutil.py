"""Socket and event-loop facts that differ between Windows and POSIX, in one place.

This module owns the options every lagscope listener sets before ``bind`` (exclusive
address use on Windows), the choice of event loop for lagscope's own loop threads, and
the classification of socket errors by errno / winerror (never by message text, which
Windows translates into the user's language). The platform is an ordinary parameter, so
the Windows branches are exercised on any OS.
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "SO_EXCLUSIVEADDRUSE",
    "SocketErrorKind",
    "bind_listeners",
    "classify_oserror",
    "free_port",
    "listen_options",
    "new_event_loop",
    "run_in_new_loop",
    "set_listen_options",
]

_T = TypeVar("_T")

# winsock2.h: #define SO_EXCLUSIVEADDRUSE ((int)(~SO_REUSEADDR)), SO_REUSEADDR being 4.
SO_EXCLUSIVEADDRUSE: int = getattr(socket, "SO_EXCLUSIVEADDRUSE", ~4)


def listen_options(platform: str = sys.platform) -> list[tuple[int, int, int]]:
    """``(level, option, value)`` to set on a listening socket before ``bind``.

    Windows: SO_EXCLUSIVEADDRUSE, so no other process (Django's ``runserver``, a second
    lagscope) can bind the same port and take part of the connections; never SO_REUSEADDR,
    which on Windows means exactly that sharing. POSIX: SO_REUSEADDR, so a restart does not
    wait out TIME_WAIT; POSIX refuses a second listener on the port either way.
    """
    if platform == "win32":
        return [(socket.SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1)]
    return [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


def set_listen_options(sock: socket.socket, platform: str = sys.platform) -> None:
    """Apply :func:`listen_options` to ``sock`` (call it before ``bind``)."""
    for level, option, value in listen_options(platform):
        sock.setsockopt(level, option, value)


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that was free a moment ago, for a server that cannot bind port 0
    and report it back (PostgreSQL, nginx, granian); its start retries the small race with
    another process taking the port first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind_listeners(host: str, port: int, platform: str = sys.platform) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets for every address ``host`` stands for.

    The same addresses and options asyncio's ``create_server`` would use, plus
    :func:`listen_options`: IPv6 sockets are IPv6-only, duplicates are skipped. On any
    failure every socket made so far is closed and the OSError propagates.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    socks: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, socktype, proto, _, addr in infos:
            if (family, addr) in seen:
                continue
            seen.add((family, addr))
            sock = socket.socket(family, socktype, proto)
            socks.append(sock)
            set_listen_options(sock, platform)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def new_event_loop(platform: str = sys.platform) -> asyncio.AbstractEventLoop:
    """A fresh event loop for a thread lagscope owns.

    On Windows always a ProactorEventLoop, whatever the global policy says: psycopg's async
    mode asks users to install the Selector policy, whose select() stops at 512 sockets.
    Elsewhere the policy's loop (uvloop users keep uvloop).
    """
    # Imported here: the probe, which imports this module, never needs asyncio.
    import asyncio

    if platform == "win32":
        proactor: type[asyncio.AbstractEventLoop] = getattr(asyncio, "ProactorEventLoop")  # noqa: B009
        return proactor()
    return asyncio.new_event_loop()


def run_in_new_loop(main: Coroutine[Any, Any, _T], platform: str = sys.platform) -> _T:
    """``asyncio.run(main)`` on a loop from :func:`new_event_loop` instead of the policy's."""
    import asyncio

    loop = new_event_loop(platform)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


SocketErrorKind = Literal["refused", "reset", "aborted", "timeout", "unreachable", "error"]

# Windows' own codes as they appear in OSError.winerror: Winsock (100xx) and the Win32 errors
# overlapped (Proactor) I/O reports.
_WINERROR_KINDS: dict[int, SocketErrorKind] = {
    10061: "refused",  # WSAECONNREFUSED
    1225: "refused",  # ERROR_CONNECTION_REFUSED
    10054: "reset",  # WSAECONNRESET
    64: "reset",  # ERROR_NETNAME_DELETED: the peer reset during an overlapped read
    10053: "aborted",  # WSAECONNABORTED
    1236: "aborted",  # ERROR_CONNECTION_ABORTED
    10060: "timeout",  # WSAETIMEDOUT
    121: "timeout",  # ERROR_SEM_TIMEOUT: a ConnectEx that timed out
    1460: "timeout",  # ERROR_TIMEOUT
    10051: "unreachable",  # WSAENETUNREACH
    10065: "unreachable",  # WSAEHOSTUNREACH
    1231: "unreachable",  # ERROR_NETWORK_UNREACHABLE
    1232: "unreachable",  # ERROR_HOST_UNREACHABLE
}

_ERRNO_KINDS: dict[int, SocketErrorKind] = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "aborted",
    errno.ETIMEDOUT: "timeout",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETDOWN: "unreachable",
    errno.EHOSTDOWN: "unreachable",
}


def classify_oserror(exc: BaseException) -> SocketErrorKind:
    """What kind of socket failure ``exc`` is, from its winerror / errno alone.

    Message text is never read: Windows localises it (``Es konnte keine Verbindung
    hergestellt werden``), and the same errno reads differently on each OS.
    """
    if isinstance(exc, TimeoutError) and getattr(exc, "errno", None) is None:
        return "timeout"  # socket.timeout / asyncio timeouts carry no errno
    if not isinstance(exc, OSError):
        return "error"
    winerror = getattr(exc, "winerror", None)
    if isinstance(winerror, int) and winerror in _WINERROR_KINDS:
        return _WINERROR_KINDS[winerror]
    if exc.errno is not None:
        if exc.errno in _ERRNO_KINDS:
            return _ERRNO_KINDS[exc.errno]
        # On Windows Python's errno constants for sockets are the Winsock numbers (100xx);
        # lower numbers mean other things on POSIX, so only those are looked up.
        if exc.errno >= 10000 and exc.errno in _WINERROR_KINDS:
            return _WINERROR_KINDS[exc.errno]
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, ConnectionAbortedError):
        return "aborted"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"

"""The probe's window on the world: the network and the clock, as plain parameters.

:class:`SystemNetwork` and :class:`SystemClock` are the real ones. The runner receives them
as arguments, so tests can hand it a scripted network and a fake clock, and users of the
Python API can hand it their own (a SOCKS tunnel, say). Name resolution is part of the
network, not hidden inside connect, so every address tried is visible to the caller.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Only https runs load ssl (~5 ms of a short run's start-up); see Client in runner.
    import ssl

__all__ = ["Clock", "Network", "Stream", "SystemClock", "SystemNetwork"]

SockAddr = tuple[str, int] | tuple[str, int, int, int]


class Stream(Protocol):
    """A connected byte stream. Errors are the standard ones (OSError, TimeoutError, ssl)."""

    def send_all(self, data: bytes, timeout_s: float) -> None: ...

    def recv(self, max_bytes: int, timeout_s: float) -> bytes:
        """Bytes received, or b"" when the peer closed its side."""
        ...

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout_s: float
    ) -> Stream: ...

    def alpn_protocol(self) -> str | None:
        """The protocol the TLS handshake agreed (ALPN), None before TLS or without ALPN."""
        ...

    def close(self) -> None: ...


class Network(Protocol):
    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        """Addresses for host, in the order the system prefers. Raises socket.gaierror."""
        ...

    def connect(self, family: int, address: SockAddr, timeout_s: float) -> Stream: ...


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """perf_counter_ns: monotonic, the best resolution the platform has."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class _SocketStream:
    __slots__ = ("_sock", "_timeout_s")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout_s = sock.gettimeout()

    def _set_timeout(self, timeout_s: float) -> None:
        # settimeout() costs system calls (it toggles O_NONBLOCK); on a 0.1 ms loopback
        # request that is measurable, so only call it when the value changes.
        if timeout_s != self._timeout_s:
            self._sock.settimeout(timeout_s)
            self._timeout_s = timeout_s

    def send_all(self, data: bytes, timeout_s: float) -> None:
        self._set_timeout(timeout_s)
        self._sock.sendall(data)

    def recv(self, max_bytes: int, timeout_s: float) -> bytes:
        self._set_timeout(timeout_s)
        return self._sock.recv(max_bytes)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str, timeout_s: float) -> Stream:
        self._set_timeout(timeout_s)
        tls = context.wrap_socket(
            self._sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        # Ownership moves to the TLS socket; closing it closes the TCP socket.
        self._sock = tls
        tls.do_handshake()
        return self

    def alpn_protocol(self) -> str | None:
        selected = getattr(self._sock, "selected_alpn_protocol", None)
        return selected() if selected is not None else None

    def close(self) -> None:
        self._sock.close()

    def __repr__(self) -> str:
        return f"<SocketStream {self._sock!r}>"


class SystemNetwork:
    """Real sockets. TCP_NODELAY is set so the probe itself never adds a Nagle stall."""

    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        # An ASCII name goes as bytes: a str is always IDNA-encoded first, and importing that
        # codec costs ~10 ms of a short run's start-up. Non-ASCII names still need IDNA.
        name: str | bytes = host.encode("ascii") if host.isascii() else host
        infos = socket.getaddrinfo(name, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        out: list[tuple[int, SockAddr]] = []
        for fam, _type, _proto, _canon, addr in infos:
            if fam in (socket.AF_INET, socket.AF_INET6) and (fam, addr) not in out:
                out.append((fam, addr))  # type: ignore[arg-type]
        return out

    def connect(self, family: int, address: SockAddr, timeout_s: float) -> Stream:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout_s)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return _SocketStream(sock)

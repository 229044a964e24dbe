"""Client sockets carried between the reload front and its app processes.

The front accepts each client connection and hands the socket itself to the current app
process, which serves it with waitress like any connection it accepted: a warm request
never crosses the front. At a switch the old app process hands each connection back once
it is idle (no request queued or running, no byte of a next request read, nothing left to
send), the front hands it on to the new one, and the client's next request, waiting in
the kernel's buffer of that very socket, is read by the new code.

One :class:`Carrier` per app process, an ordered channel of small JSON messages, some of
which carry a socket:

- POSIX: a Unix socket pair (``SOCK_SEQPACKET`` where the OS has it, else ``SOCK_DGRAM``),
  one end inherited by the app process, the descriptor travelling as ``SCM_RIGHTS``
  (:class:`UnixCarrier`);
- Windows: the app process's pipes the front already talks over, the socket as
  ``socket.share(pid)`` data in the line (:class:`PipeCarrier`; the receiving side
  rebuilds it with :func:`unpack`, ``socket.fromshare``).

Messages: ``conn`` (a client connection; ``reused``: it has carried a request already,
``idle_since``: wall-clock seconds of its last activity, so the idle timeout runs across
handoffs), ``retire`` (front to app: hand every connection back once idle, then stop),
``closed`` (app to front: a client connection it held is closed, for the connection
limit).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import sys
import threading
from collections.abc import Callable
from typing import IO, Any, Protocol

__all__ = ["MAX_MESSAGE_BYTES", "Carrier", "PipeCarrier", "UnixCarrier", "pair", "unpack"]

# A message is a few dozen bytes of JSON; the bound only sizes the receive buffer.
MAX_MESSAGE_BYTES = 4096

Message = dict[str, Any]


class Carrier(Protocol):
    """One end of the channel between the front and one app process."""

    def send(self, message: Message, sock: socket.socket | None = None) -> None:
        """Send ``message`` (with ``sock``, which is then closed here: the peer owns it).
        Thread-safe. Raises OSError when the peer is gone (``sock`` is closed anyway)."""


class UnixCarrier:
    """POSIX: a Unix socket, the client socket's descriptor as ``SCM_RIGHTS``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<UnixCarrier fd={self.sock.fileno()}>"

    def send(self, message: Message, sock: socket.socket | None = None) -> None:
        data = json.dumps(message).encode()
        try:
            if sys.platform == "win32":
                raise OSError("SCM_RIGHTS is POSIX only")
            with self._lock:
                if sock is None:
                    self.sock.send(data)
                else:
                    socket.send_fds(self.sock, [data], [sock.fileno()])
        finally:
            if sock is not None:
                sock.close()

    def receive(self) -> tuple[Message, socket.socket | None] | None:
        """The next message (blocking); None once the peer has closed its end."""
        if sys.platform == "win32":
            return None
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE_BYTES, 1)
        except OSError:
            return None
        if not data:
            for fd in fds:
                socket.close(fd)
            return None
        sock = socket.socket(fileno=fds[0]) if fds else None
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            if sock is not None:
                sock.close()
            return {}, None
        return message, sock

    def serve(self, on_message: Callable[[Message, socket.socket | None], None]) -> None:
        """Call ``on_message`` for each message until the peer closes (a thread's body)."""
        while (got := self.receive()) is not None:
            if got[0]:
                on_message(*got)

    def close(self) -> None:
        """Also wakes a thread blocked in :meth:`receive` (where ``shutdown`` does)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected Unix socket pair that keeps message boundaries (POSIX only)."""
    if sys.platform == "win32":
        raise OSError("Unix socket pairs are POSIX only")
    seqpacket = getattr(socket, "SOCK_SEQPACKET", None)
    if seqpacket is not None:
        with contextlib.suppress(OSError):  # macOS has no SEQPACKET Unix sockets
            return socket.socketpair(socket.AF_UNIX, seqpacket)
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


class PipeCarrier:
    """Windows: JSON lines on a pipe, the socket as ``socket.share(peer_pid)`` data."""

    def __init__(self, stream: IO[str], peer_pid: int, lock: threading.Lock | None = None):
        self.stream = stream
        self.peer_pid = peer_pid
        # The pipe may carry the process's other control lines: one lock for all writers.
        self.lock = lock or threading.Lock()

    def __repr__(self) -> str:
        return f"<PipeCarrier to pid {self.peer_pid}>"

    def send(self, message: Message, sock: socket.socket | None = None) -> None:
        try:
            if sock is not None:
                message = {**message, "share": _share(sock, self.peer_pid)}
            line = json.dumps(message) + "\n"
            with self.lock:
                self.stream.write(line)
                self.stream.flush()
        except ValueError as exc:  # written to a closed pipe
            raise OSError(str(exc)) from exc
        finally:
            if sock is not None:
                sock.close()


def _share(sock: socket.socket, pid: int) -> str:
    if sys.platform == "win32":
        return base64.b64encode(sock.share(pid)).decode("ascii")
    raise OSError("socket.share exists on Windows only")


def unpack(message: Message) -> socket.socket | None:
    """The socket a :class:`PipeCarrier` line carries (None when it carries none)."""
    shared = message.pop("share", None)
    if not isinstance(shared, str):
        return None
    if sys.platform == "win32":
        return socket.fromshare(base64.b64decode(shared))
    raise OSError("socket.fromshare exists on Windows only")

"""The reload front: owns the listening sockets, accepts every client connection and hands
the socket itself to the current app process (:mod:`lagscope.serve.reload.handoff`).

A warm request never crosses the front: the app process's waitress reads it from the
client's own socket and answers on it. The front parses nothing; it moves sockets. At a
switch (:meth:`Front.switch`) new connections go to the new app process, and the old one
hands each of its connections back as soon as it is idle (``retire``), which the front
hands on to whichever process is current then. While no app process is current (the
only one died), accepted and handed-back connections wait here, unread, for the next one.

The connection limit is waitress's rule applied here, where the accepting is: with
``connection_limit`` client connections open (in app processes, in transit or waiting
here), the front stops accepting and new clients wait in the listen backlog until one
closes. Each app process reports every client connection it closes (``closed``).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable
from typing import Protocol

from lagscope.serve.reload.handoff import Carrier, Message

__all__ = ["ACCEPT_RETRY_S", "Front", "Holder"]

# After an accept() that failed for lack of descriptors (EMFILE/ENFILE), try again this
# much later rather than spin.
ACCEPT_RETRY_S = 0.1
_TRANSIENT_ACCEPT = (errno.ECONNABORTED, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


class Holder(Protocol):
    """An app process as the front sees it: where its sockets go, how many it holds."""

    carrier: Carrier
    held: int


class Front:
    """The listeners, the client connections' count, and the current app process."""

    def __init__(
        self, connection_limit: int, notify: Callable[[str], None] = lambda line: None
    ) -> None:
        self.connection_limit = connection_limit
        # One line when accepting stops at the limit, as waitress logs it.
        self.notify = notify
        self.current: Holder | None = None
        self.stopping = False
        # Client connections open anywhere (app processes, in transit, waiting here).
        self.open = 0
        self.accepted = 0
        self.at_limit_count = 0
        self.waiting: list[tuple[Message, socket.socket]] = []
        self._socks: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._room: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"<Front open={self.open}/{self.connection_limit} accepted={self.accepted} "
            f"waiting={len(self.waiting)} stopping={self.stopping}>"
        )

    async def listen(self, socks: list[socket.socket]) -> None:
        """Serve on already-listening sockets (accepting starts with :meth:`start`)."""
        for sock in socks:
            sock.setblocking(False)
        self._socks = list(socks)
        self._room = asyncio.Event()
        self._room.set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._accept(sock)) for sock in self._socks]

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self._room is not None
        while self._accepting():
            if self.open >= self.connection_limit:
                # As waitress at its limit: stop accepting; clients wait in the backlog.
                self.at_limit_count += 1
                self.notify(
                    f"{self.open} client connections open (--connection-limit "
                    f"{self.connection_limit}): new ones wait until one closes"
                )
                self._room.clear()
                await self._room.wait()
                continue
            try:
                sock, _addr = await loop.sock_accept(listener)
            except OSError as exc:
                if not self._accepting():
                    return
                if exc.errno not in _TRANSIENT_ACCEPT:
                    await asyncio.sleep(ACCEPT_RETRY_S)  # out of descriptors: let some close
                continue
            self.open += 1
            self.accepted += 1
            self.hand({"kind": "conn", "reused": False, "idle_since": time.time()}, sock)

    def _accepting(self) -> bool:
        return not self.stopping

    def hand(self, message: Message, sock: socket.socket) -> None:
        """Give a client connection to the current app process (or keep it until there is
        one); during the stop it is closed."""
        if self.stopping:
            sock.close()
            self._gone(1)
            return
        target = self.current
        if target is None:
            self.waiting.append((message, sock))
            return
        try:
            target.carrier.send(message, sock)
        except OSError:  # that process is gone; sock was closed with the attempt
            self._gone(1)
            return
        target.held += 1

    def switch(self, holder: Holder | None) -> Holder | None:
        """Make ``holder`` current (None: nothing serves until the next switch); returns
        the one it replaces, which the caller retires. Connections waiting here go to it."""
        old, self.current = self.current, holder
        if holder is not None:
            waiting, self.waiting = self.waiting, []
            for message, sock in waiting:
                self.hand(message, sock)
        return old

    def on_message(self, origin: Holder, message: Message, sock: socket.socket | None) -> None:
        """A message from an app process's carrier (in the loop thread)."""
        kind = message.get("kind")
        if kind == "conn" and sock is not None:
            origin.held -= 1
            self.hand(message, sock)
        elif kind == "closed":
            origin.held -= 1
            self._gone(1)
        elif sock is not None:
            sock.close()

    def exited(self, origin: Holder) -> None:
        """``origin`` exited: the connections it held closed with it."""
        if origin is self.current:
            self.current = None
        held, origin.held = max(0, origin.held), 0
        self._gone(held)

    def _gone(self, count: int) -> None:
        self.open = max(0, self.open - count)
        if self._room is not None and self.open < self.connection_limit:
            self._room.set()

    def stop(self) -> None:
        """Stop accepting and close what waits here (app processes drain their own)."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        for sock in self._socks:
            # After the cancelled accepts have unregistered (their callbacks come first).
            loop.call_soon(sock.close)
        waiting, self.waiting = self.waiting, []
        for _message, sock in waiting:
            sock.close()
        self._gone(len(waiting))
        if self._room is not None:
            self._room.set()

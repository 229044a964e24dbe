"""Connection identity: is this request the first one on its client TCP connection?

Three sources, best first:

* the environ key :data:`CLIENT_CONNECTION_NEW` (a bool), set by the server itself when
  its connection object does not tell: behind ``serve --reload`` a client socket moves
  between app processes, and its count of requests moves with it
  (:mod:`lagscope.serve.reload.handed`); never a request header;

* a server-provided connection object (waitress puts its channel behind
  ``environ["waitress.client_disconnected"]``). It is tracked in a weak set, so identity
  is exact and memory is bounded by the connections the server holds open;
* the peer address ``(REMOTE_ADDR, REMOTE_PORT)``, kept in an LRU table bounded by
  ``max_entries``. An entry idle for longer than ``idle_s`` counts as a new connection,
  because every common server or browser has closed such a connection by then. A
  client that reuses the same source port for a new connection within ``idle_s`` is
  reported as reused; TCP TIME_WAIT makes that rare.

The clock is the caller's: ``now_s`` is any monotonic seconds value.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["CLIENT_CONNECTION_NEW", "ConnectionTracker"]

# True/False: the server knows whether this request is the first on its client connection.
CLIENT_CONNECTION_NEW = "lagscope.client_connection_new"


class ConnectionTracker:
    """Thread-safe record of the client connections seen recently."""

    def __init__(self, max_entries: int = 4096, idle_s: float = 300.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.idle_s = idle_s
        self._last_seen_s: OrderedDict[Hashable, float] = OrderedDict()
        self._objects: weakref.WeakSet[object] = weakref.WeakSet()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<ConnectionTracker addresses={len(self._last_seen_s)}/{self.max_entries} "
            f"objects={len(self._objects)} idle_s={self.idle_s}>"
        )

    def first_on_object(self, conn: object) -> bool:
        """True the first time ``conn`` (a live server connection object) is seen."""
        with self._lock:
            if conn in self._objects:
                return False
            self._objects.add(conn)
            return True

    def first_on_address(self, key: Hashable, now_s: float) -> bool:
        """True when ``key`` (peer address and port) was not seen within ``idle_s``."""
        with self._lock:
            last_s = self._last_seen_s.get(key)
            self._last_seen_s[key] = now_s
            if last_s is not None:
                self._last_seen_s.move_to_end(key)
                return now_s - last_s > self.idle_s
            if len(self._last_seen_s) > self.max_entries:
                self._last_seen_s.popitem(last=False)
            return True

    def first_request(
        self, remote_addr: str | None, remote_port: object, conn: object | None, now_s: float
    ) -> bool | None:
        """Classify one request; None when the server gave nothing to identify it by."""
        if conn is not None:
            try:
                return self.first_on_object(conn)
            except TypeError:
                pass  # not weak-referenceable: fall back to the address
        if not remote_addr or remote_port in (None, "", "None"):
            return None
        return self.first_on_address((remote_addr, str(remote_port)), now_s)

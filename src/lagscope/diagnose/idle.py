"""The idle watch: one kept-alive connection left idle for the rest of the run, to see whether
the server closes idle connections early.

Browsers keep a used idle connection 300 s; a server that closes it after a few seconds
(uvicorn's 5 s, gunicorn's 2 s keep-alive) makes the user's next click after a pause pay a
new connection, and a request sent as the close crosses it is lost or retried. The watch
costs one request and a thread that waits for the server's FIN; it sees only timeouts
shorter than the run itself.
"""

from __future__ import annotations

import threading

from lagscope.diagnose.context import LadderRun
from lagscope.errors import LagscopeError
from lagscope.probe.runner import Connection, RunDeadline, make_record

__all__ = ["IdleWatch"]

# How often the watching thread looks up from its wait to see whether the run is over.
_POLL_S = 0.1


class IdleWatch:
    """Started after the warm-up (its request must not take a worker's first request from
    the warm-up rung); :meth:`stop` says when the server closed the idle connection."""

    def __init__(self, run: LadderRun) -> None:
        self._run = run
        self._conn: Connection | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed_after_s: float | None = None

    def start(self) -> None:
        """One request on a new connection, then the wait; best effort (a failure here is
        any later rung's to report)."""
        run = self._run
        client = run.client()
        try:
            conn = client.open("the idle watch")
            start = run.clock.now_ns()
            ex = client.exchange(conn, "the idle watch")
        except (LagscopeError, RunDeadline):
            return
        run.keep([make_record("idle_watch", 0, conn, True, ex, start, run.run_start)])
        if not ex.keep_alive:
            conn.close()
            return
        self._conn = conn
        self._thread = threading.Thread(target=self._watch, args=(conn,), daemon=True)
        self._thread.start()

    def _watch(self, conn: Connection) -> None:
        try:
            self._wait_for_close(conn)
        finally:
            self._ended.set()

    def _wait_for_close(self, conn: Connection) -> None:
        while not self._stop.is_set():
            try:
                data = conn.stream.recv(1, _POLL_S)
            except TimeoutError:
                continue
            except OSError:
                data = b""  # a reset: closed all the same
            if not data:
                idle_ns = self._run.clock.now_ns() - conn.last_end_ns
                self._closed_after_s = round(max(0.0, idle_ns / 1e9), 3)
            return  # closed, or bytes nobody asked for: either way no longer idle

    def wait(self, idle_s: float) -> None:
        """Until the connection has sat idle ``idle_s`` (or the server closed it), within
        what is left of the run."""
        conn, run = self._conn, self._run
        if conn is None or self._ended.is_set():
            return
        idle_now_s = (run.clock.now_ns() - conn.last_end_ns) / 1e9
        wait_s = min(idle_s - idle_now_s, run.left_s())
        if wait_s > 0:
            asked = f"waiting {wait_s:.1f} s: does the server close idle connections?"
            run.say("idle watch", asked)
            self._ended.wait(wait_s)

    def stop(self) -> float | None:
        """Ends the watch: the seconds the connection sat idle before the server closed it,
        or None when it was still open."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10 * _POLL_S + 1)
        if self._conn is not None:
            self._conn.close()
        return self._closed_after_s

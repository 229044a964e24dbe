"""Plain HTTP/1.1 keep-alive clients for the serve tests (loopback only, bounded)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lagscope.instrument.servertiming import parse_headers


@dataclass
class Result:
    path: str
    started_s: float
    ended_s: float
    status: int  # 0: the request failed below HTTP (connection refused, reset, timeout)
    content_length: str | None = None
    new_connection: bool = False
    metrics: tuple[str, ...] = ()
    error: str = ""
    body: bytes = b""


@dataclass
class KeepAliveClient:
    """One keep-alive connection; reconnects (and records it) if the server closed."""

    host: str
    port: int
    timeout_s: float = 15.0
    conn: http.client.HTTPConnection | None = None
    connects: int = 0
    results: list[Result] = field(default_factory=list)

    def get(self, path: str, keep_body: bool = False) -> Result:
        started = time.monotonic()
        new = False
        try:
            if self.conn is None or self.conn.sock is None:
                self.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self.conn.connect()
                self.connects += 1
                new = True
            self.conn.request("GET", path)
            resp = self.conn.getresponse()
            body = resp.read()
            metrics = tuple(
                m.name for m in parse_headers(resp.headers.get_all("Server-Timing") or [])
            )
            result = Result(
                path,
                started,
                time.monotonic(),
                resp.status,
                resp.getheader("Content-Length"),
                new,
                metrics,
                body=body if keep_body else b"",
            )
            if resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            result = Result(path, started, time.monotonic(), 0, None, new, (), repr(exc))
        self.results.append(result)
        return result

    def json(self, path: str) -> Any:
        return json.loads(self.get(path, keep_body=True).body)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def hammer(
    host: str,
    port: int,
    clients: int,
    duration_s: float,
    path: str = "/api/items/",
    max_requests: int = 5000,
    stop: threading.Event | None = None,
) -> list[KeepAliveClient]:
    """``clients`` threads, each on one keep-alive connection, until ``duration_s`` passes,
    ``stop`` is set, or ``max_requests`` in total were sent."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + duration_s
    pool = [KeepAliveClient(host, port) for _ in range(clients)]
    budget = threading.Semaphore(max_requests)

    def run(client: KeepAliveClient) -> None:
        try:
            while not stop.is_set() and time.monotonic() < deadline and budget.acquire(False):
                client.get(path)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 60)
    return pool

"""What a browser does on a fresh visit, as a plan (pure) and as a client (the I/O shell).

:func:`visit_plan` lists rounds of requests: the page alone on a new connection, then the
page's fetches on that connection and on new parallel ones (a browser opens several), then
more of the same until the first :data:`~lagscope.demo.model.FIRST_REQUESTS` are done;
warm rounds on the same keep-alive connections follow. :func:`run_visit` sends a plan over
real keep-alive connections (one thread per connection in a round) and returns one
:class:`~lagscope.demo.model.Sample` per request. The clock is a parameter.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from lagscope.demo.model import FIRST_REQUESTS, Sample
from lagscope.instrument.servertiming import parse_headers

__all__ = ["PlannedRequest", "run_visit", "visit_plan"]

PAGE = "/items/"
FETCH = "/api/items/"
Clock = Callable[[], float]


@dataclass(frozen=True)
class PlannedRequest:
    connection: int
    path: str
    phase: str


def visit_plan(parallel: int, warm: int, first: int = FIRST_REQUESTS) -> list[list[PlannedRequest]]:
    """Rounds of requests sent together (one per connection in a round)."""
    if parallel < 1 or first < 1 or warm < 0:
        raise ValueError("parallel and first must be >= 1, warm >= 0")
    rounds = [[PlannedRequest(1, PAGE, "visit")]]
    sent = 1
    for phase, budget in (("visit", first - 1), ("warm", warm)):
        left = budget
        while left > 0:
            n = min(parallel, left)
            rounds.append([PlannedRequest(c, FETCH, phase) for c in range(1, n + 1)])
            left -= n
            sent += n
    return rounds


def _app_figures(values: list[str]) -> tuple[float | None, int]:
    app_ms: float | None = None
    db_connects = 0
    for metric in parse_headers(values):
        if metric.name == "total" and metric.dur_ms is not None:
            app_ms = metric.dur_ms
        elif metric.name == "dbconn":
            # desc is "N connect(s)"; a dbconn metric without a count means one connect.
            count = (metric.desc or "1").split()[0]
            db_connects += int(count) if count.isdigit() else 1
    return app_ms, db_connects


_Outcome: TypeAlias = "tuple[float, int, bool, list[str]] | BaseException"


class _Conn:
    def __init__(
        self, host: str, port: int, timeout_s: float, tls: ssl.SSLContext | None = None
    ) -> None:
        self.http = (
            http.client.HTTPSConnection(host, port, timeout=timeout_s, context=tls)
            if tls is not None
            else http.client.HTTPConnection(host, port, timeout=timeout_s)
        )

    def request(self, path: str, clock: Clock) -> tuple[float, int, bool, list[str]]:
        new = self.http.sock is None
        start = clock()
        self.http.request("GET", path, headers={"Accept": "*/*", "User-Agent": "lagscope-demo"})
        resp = self.http.getresponse()
        resp.read()
        elapsed_ms = (clock() - start) * 1000
        timing = resp.headers.get_all("Server-Timing") or []
        return elapsed_ms, resp.status, new, timing

    def close(self) -> None:
        self.http.close()


def _send(conn: _Conn, req: PlannedRequest, clock: Clock, results: dict[int, _Outcome]) -> None:
    try:
        results[req.connection] = conn.request(req.path, clock)
    except Exception as exc:  # reported on the caller's thread
        results[req.connection] = exc


def run_visit(
    host: str,
    port: int,
    rounds: Sequence[Sequence[PlannedRequest]],
    *,
    timeout_s: float = 30.0,
    clock: Clock = time.perf_counter,
    tls: ssl.SSLContext | None = None,
) -> list[Sample]:
    """Send the plan; each request is bounded by ``timeout_s`` (socket timeout). With
    ``tls``, over HTTPS (HTTP/1.1 inside), a new connection's time including its handshake."""
    conns: dict[int, _Conn] = {}
    samples: list[Sample] = []
    index = 0
    try:
        for round_ in rounds:
            results: dict[int, _Outcome] = {}
            for req in round_:
                if req.connection not in conns:
                    conns[req.connection] = _Conn(host, port, timeout_s, tls)
            if len(round_) == 1:
                _send(conns[round_[0].connection], round_[0], clock, results)
            else:
                threads = [
                    threading.Thread(
                        target=_send, args=(conns[r.connection], r, clock, results), daemon=True
                    )
                    for r in round_
                ]
                for t in threads:
                    t.start()
                # A peer that drips a byte at a time never trips the socket timeout; the
                # round as a whole is bounded too.
                deadline = time.monotonic() + timeout_s
                for t in threads:
                    t.join(max(0.0, deadline - time.monotonic()))
            for req in round_:
                outcome = results.get(req.connection)
                if outcome is None:
                    raise TimeoutError(f"no response to {req.path} within {timeout_s:g} s")
                if isinstance(outcome, BaseException):
                    raise outcome
                elapsed_ms, status, new, timing = outcome
                app_ms, db_connects = _app_figures(timing)
                index += 1
                samples.append(
                    Sample(
                        index=index,
                        path=req.path,
                        connection=req.connection,
                        new_connection=new,
                        elapsed_ms=round(elapsed_ms, 3),
                        status=status,
                        app_ms=app_ms,
                        db_connects=db_connects,
                        phase=req.phase,
                    )
                )
    finally:
        for conn in conns.values():
            conn.close()
    return samples

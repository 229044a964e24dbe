"""The request loops every rung sends through, written once.

:func:`in_order` (the warm-up sequence, the back-to-back series, the cheap requests on a
kept-alive connection) and :func:`concurrent` (the burst, the concurrency ladder: one
thread per client) both run :func:`_on_one_connection`: requests one after another on one
kept-alive connection, a new one when the server closes it, a silently closed one retried
as a browser does. :func:`single` is one request on a connection of its own. The network
and clock are the run's (:class:`lagscope.diagnose.context.LadderRun`).
"""

from __future__ import annotations

import threading
from dataclasses import replace

from lagscope.diagnose.context import LadderRun
from lagscope.errors import LagscopeError
from lagscope.probe.model import RequestRecord
from lagscope.probe.runner import Client, Connection, Exchange, RunDeadline, make_record

__all__ = ["concurrent", "in_order", "single"]

# Concurrent clients start together; one that never reaches the start line (a thread that
# could not start) must not hold the others for ever.
_START_TIMEOUT_S = 10.0


def _on_one_connection(
    run: LadderRun,
    client: Client,
    count: int,
    series: str,
    where: str,
    out: list[RequestRecord],
    *,
    interval_s: float = 0.0,
    unrecorded: int = 0,
    stop_at_ns: int | None = None,
) -> None:
    """``unrecorded`` requests, then ``count`` recorded into ``out`` (as they come, so a
    failure keeps what was measured), ``interval_s`` apart; past ``stop_at_ns`` it stops
    after the first recorded one. Connection ids are the client's own."""
    conn: Connection | None = None
    try:
        for i in range(unrecorded + count):
            if stop_at_ns is not None and i > unrecorded and run.clock.now_ns() >= stop_at_ns:
                break
            if interval_s and i:
                run.clock.sleep(interval_s)
            start = run.clock.now_ns()
            new = conn is None
            if conn is None:
                conn = client.open(where)
            conn, ex, again = client.exchange_reusing(conn, f"{where} request {i + 1}")
            if i >= unrecorded:
                out.append(
                    make_record(
                        series, i - unrecorded, conn, new or again, ex, start, run.run_start
                    )
                )
            if not ex.keep_alive:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


def in_order(
    run: LadderRun,
    client: Client,
    count: int,
    series: str,
    where: str,
    interval_s: float = 0.0,
) -> list[RequestRecord]:
    """``count`` requests on one kept-alive connection, kept in the run; returns them."""
    local: list[RequestRecord] = []
    try:
        _on_one_connection(run, client, count, series, where, local, interval_s=interval_s)
    finally:
        run.silent_closes += client.state.silent_closes
    return run.keep(local)


def concurrent(
    run: LadderRun,
    clients: int,
    requests: int,
    series: str,
    unrecorded: int,
    budget_s: float | None = None,
) -> list[RequestRecord]:
    """``clients`` threads, each on its own keep-alive connection, started together; each
    sends ``unrecorded`` requests first (a connection and a worker already set up), then
    ``requests``, within ``budget_s``. Kept in the run; returns them."""
    stop_at = run.run_end
    if budget_s is not None:
        stop_at = min(stop_at, run.clock.now_ns() + int(budget_s * 1e9))
    results: list[list[RequestRecord]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    closes: list[tuple[int, float]] = []
    gate = threading.Barrier(clients)

    def work(k: int) -> None:
        client = run.client()
        try:
            gate.wait(timeout=_START_TIMEOUT_S)
            _on_one_connection(
                run,
                client,
                requests,
                series,
                f"{series} client {k + 1}",
                results[k],
                unrecorded=unrecorded,
                stop_at_ns=stop_at,
            )
        except Exception as exc:  # raised again below, in the run's own thread
            errors.append(exc)
        finally:
            closes.extend(client.state.silent_closes)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out: list[RequestRecord] = []
    for k, rs in enumerate(results):
        # Each client's connections get their own ids within this rung.
        out += [replace(r, connection=k) for r in rs]
    run.silent_closes += closes
    expected = (LagscopeError, RunDeadline, threading.BrokenBarrierError)
    bugs = [e for e in errors if not isinstance(e, expected)]
    if bugs:
        # Not a traceback on a thread's stderr with the run going on without its data.
        raise bugs[0]
    lagscope_errors = [e for e in errors if isinstance(e, LagscopeError)]
    if lagscope_errors and not out:
        raise lagscope_errors[0]
    if any(isinstance(e, RunDeadline) for e in errors):
        run.truncated = True
    return run.keep(out)


def single(
    run: LadderRun,
    client: Client,
    series: str,
    where: str,
    index: int = 0,
    *,
    keep_body: bool = False,
    hold_s: float = 0.0,
) -> tuple[RequestRecord, Exchange]:
    """One request on a new connection of its own, closed after it: its record (not yet
    kept: the caller keeps it with the rest of its rung) and the exchange."""
    start = run.clock.now_ns()
    conn = client.open(where)
    try:
        ex = client.exchange(conn, where, keep_body=keep_body, hold_s=hold_s)
    finally:
        conn.close()
    return make_record(series, index, conn, True, ex, start, run.run_start), ex

"""Connection balancing across workers: the pure rule, the shared table, and two real
waitress servers (threads of this process) on one listening socket, where every answer
names the server that accepted the connection."""

from __future__ import annotations

import http.client
import multiprocessing
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from waitress.server import TcpWSGIServer

from lagscope.serve.accept import build_server, open_connections
from lagscope.serve.balance import ABSENT, Balance, LoadTable, may_accept
from lagscope.serve.server import WaitressServer

# ----------------------------------------------------------------------------- the rule


def test_the_least_loaded_worker_accepts_and_ties_accept() -> None:
    beats = [100.0, 100.0, 100.0]
    assert may_accept(0, 2, [2, 3, 4], beats, 100.5)
    assert not may_accept(1, 3, [2, 3, 4], beats, 100.5)
    assert may_accept(1, 3, [3, 3, 3], beats, 100.5)  # a tie: everyone accepts


def test_absent_and_stale_workers_do_not_hold_the_others_back() -> None:
    # Worker 1 is not serving (absent), worker 2's loop has not run for 5 s (hung).
    counts, beats = [4, ABSENT, 0], [100.0, 0.0, 95.0]
    assert may_accept(0, 4, counts, beats, 100.0, stale_s=3.0)
    assert not may_accept(0, 4, counts, beats, 97.0, stale_s=3.0)  # worker 2 still fresh


def test_someone_always_accepts_whatever_the_published_counts() -> None:
    # Every combination of 3 workers' counts in 0..4: each worker decides from its own
    # count and the others' published ones; at least one accepts.
    beats = [0.0, 0.0, 0.0]
    for a in range(5):
        for b in range(5):
            for c in range(5):
                counts = [a, b, c]
                assert any(may_accept(i, counts[i], counts, beats, 0.0) for i in range(3))


def test_balance_publishes_its_count_and_heartbeat() -> None:
    table = LoadTable(2, multiprocessing.get_context("spawn"))
    now = [10.0]
    first, second = Balance(table, 0, lambda: now[0]), Balance(table, 1, lambda: now[0])
    assert first.decide(0)  # the other slot is absent
    assert table.snapshot() == ([0, ABSENT], [10.0, 0.0])
    assert second.decide(1) is False and second.accepting is False
    now[0] = 20.0  # worker 0's heartbeat is 10 s old: it no longer counts
    assert second.decide(1)
    first.leave()
    assert table.snapshot()[0] == [ABSENT, 1]


def test_a_worker_that_joined_counts_before_its_loop_runs() -> None:
    # Reported ready but not looping yet: the first connections still leave it its share.
    table = LoadTable(2, multiprocessing.get_context("spawn"))
    now = [5.0]
    first, second = Balance(table, 0, lambda: now[0]), Balance(table, 1, lambda: now[0])
    assert first.decide(1)  # alone: the other slot is absent
    second.join()
    assert table.snapshot() == ([1, 0], [5.0, 5.0])
    assert first.decide(1) is False


# ----------------------------------------------------------------- real waitress servers


def _named(name: str) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = name.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


@contextmanager
def _workers(
    table: LoadTable, names: list[str], idle_wake_s: float, stale_s: float = 3.0
) -> Iterator[tuple[int, list[WaitressServer]]]:
    """``len(names)`` waitress servers on one listening socket, each looping in a thread
    with the given idle wake-up (a long one shows whether a non-accepting server rechecks
    on its own)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    servers: list[WaitressServer] = []
    loops: list[threading.Thread] = []
    with ExitStack() as stack:
        stack.callback(listener.close)
        for index, name in enumerate(names):
            balance = Balance(table, index, stale_s=stale_s)
            sock = listener.dup()
            server = build_server(_named(name), [sock], {"threads": 1}, balance)
            ws = WaitressServer(server, [], port, balance=balance, idle_wake_s=idle_wake_s)
            servers.append(ws)
            loop = threading.Thread(target=ws.serve, name=f"loop-{name}", daemon=True)
            loop.start()
            loops.append(loop)
        try:
            yield port, servers
        finally:
            for ws in servers:
                ws.stop()
            for ws in servers:
                assert ws.wait_stopped(20)


def _listeners(ws: WaitressServer) -> list[Any]:
    return [obj for obj in ws.server.map.values() if isinstance(obj, TcpWSGIServer)]


def _open(port: int, clients: list[http.client.HTTPConnection]) -> tuple[str, float]:
    """A new keep-alive connection (kept in ``clients``), one request on it: (who, s)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    clients.append(conn)
    start = time.monotonic()
    conn.request("GET", "/")
    body = conn.getresponse().read().decode()
    return body, time.monotonic() - start


def test_eight_keep_alive_connections_split_four_and_four() -> None:
    table = LoadTable(2, multiprocessing.get_context("spawn"))
    clients: list[http.client.HTTPConnection] = []
    # A 30 s idle wake-up: a server that stopped accepting and did not recheck on its own
    # would leave a new connection waiting that long.
    with _workers(table, ["A", "B"], idle_wake_s=30.0) as (port, servers):
        try:
            answers = [_open(port, clients) for _ in range(8)]
            held = [open_connections(_listeners(ws)) for ws in servers]
        finally:
            for conn in clients:
                conn.close()
    who = Counter(name for name, _ in answers)
    assert who == {"A": 4, "B": 4}, answers  # ground truth: each server names itself
    assert held == [4, 4]
    # Generous against scheduling noise, far below the 30 s a missed recheck would cost.
    assert max(s for _, s in answers) < 5.0, answers


def test_a_hung_worker_that_claims_fewer_connections_stops_counting() -> None:
    # Slot 1 claims 0 connections with a fresh heartbeat and never accepts (a hung loop).
    table = LoadTable(2, multiprocessing.get_context("spawn"))
    table.counts[1] = 0
    table.beats_s[1] = time.monotonic()
    clients: list[http.client.HTTPConnection] = []
    with _workers(table, ["A"], idle_wake_s=30.0, stale_s=1.0) as (port, _servers):
        try:
            first, _ = _open(port, clients)  # A holds 0 <= 0: accepts
            second, waited_s = _open(port, clients)  # A holds 1 > 0: waits for staleness
        finally:
            for conn in clients:
                conn.close()
    assert (first, second) == ("A", "A")
    assert waited_s < 10.0  # once slot 1 is 1 s stale, not after A's 30 s idle wake-up

"""Benchmark the probe itself: overhead against a raw-socket client, and accuracy.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_probe.py [--rounds 5]

- Overhead: warm p50 of a hello-world waitress app as the probe measures it, against a
  minimal raw-socket keep-alive client, interleaved round by round in one run. Target ≤ 1.1×.
- Accuracy: a threaded server delays the first response on each new connection by d = 5,
  50 and 300 ms and records the delay it really applied; the probe's reported cold−warm
  difference of medians must be within ±(0.5 ms + 3 %) of it.

Loopback only; every loop is bounded. Prints a Markdown section for docs/performance.md.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import h11

from lagscope import __version__
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.runner import run_probe

_SERVER = """
import sys
from waitress.server import create_server

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"hello world"]

server = create_server(hello, host="127.0.0.1", port=0)
print(server.effective_port, flush=True)
server.run()
"""


@contextmanager
def waitress_app() -> Iterator[int]:
    """waitress in its own process, as in real use: no GIL shared with the client. The
    port line on stdout is the readiness signal (the socket listens before it is printed)."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def raw_client_ms(port: int, n: int, gap_us: float = 0.0) -> list[float]:
    """The floor: one keep-alive socket, prebuilt request, read until the known length.

    It sends the very bytes the probe sends (built once with h11), so the server does the
    same work for both and the ratio isolates the measuring client's own cost.
    """
    h = h11.Connection(h11.CLIENT)
    req = (
        h.send(
            h11.Request(
                method="GET",
                target="/",
                headers=[
                    ("Host", f"127.0.0.1:{port}"),
                    ("User-Agent", f"lagscope/{__version__}"),
                    ("Accept", "*/*"),
                ],
            )
        )
        or b""
    )
    req += h.send(h11.EndOfMessage()) or b""
    out = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)  # warm-up, like the probe's warm_first
        _read_response(s)
        for _ in range(n):
            if gap_us:
                # Busy gap between requests, like the probe's bookkeeping between its own.
                until = time.perf_counter_ns() + int(gap_us * 1000)
                while time.perf_counter_ns() < until:
                    pass
            t0 = time.perf_counter_ns()
            s.sendall(req)
            _read_response(s)
            out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def _read_response(s: socket.socket) -> None:
    data = b""
    while not data.endswith(b"hello world"):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed")
        data += chunk


def overhead(rounds: int) -> tuple[float, float, float, float]:
    """(probe p50, raw p50, raw-with-the-probe's-gap p50, that gap in µs)."""
    probe_p50s, raw_p50s, gap_p50s, gaps_us = [], [], [], []
    gap_us = 0.0
    with waitress_app() as port:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(rounds):
            raw_p50s.append(statistics.median(raw_client_ms(port, 200)))
            rep = run_probe(ProbeOptions(target=parse_url(url), cold=0, warm=200))
            s = rep.get_series("warm")
            assert s is not None
            total = s.stats("total")
            assert total is not None
            probe_p50s.append(total.p50_ms)
            # The probe's own bookkeeping between two requests, from its own record.
            rs = s.requests
            gap_us = statistics.median(
                (b.start_ms - a.start_ms - a.total_ms) * 1000 for a, b in itertools.pairwise(rs)
            )
            gaps_us.append(gap_us)
            gap_p50s.append(statistics.median(raw_client_ms(port, 200, gap_us=gap_us)))
    return (
        statistics.median(probe_p50s),
        statistics.median(raw_p50s),
        statistics.median(gap_p50s),
        statistics.median(gaps_us),
    )


class DelayServer:
    """Threaded HTTP server: the first response on each connection waits ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.applied_ms: list[float] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        h = h11.Connection(h11.SERVER)
        first = True
        with conn:
            while True:
                ev = h.next_event()
                if ev is h11.NEED_DATA:
                    data = conn.recv(65536)
                    h.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(ev, h11.ConnectionClosed):
                    return
                if isinstance(ev, h11.EndOfMessage):
                    if first:
                        t0 = time.perf_counter()
                        end = t0 + self.delay_s
                        # Sleep most of it, spin the rest: time.sleep alone overshoots.
                        if self.delay_s > 0.002:
                            time.sleep(self.delay_s - 0.002)
                        while time.perf_counter() < end:
                            pass
                        self.applied_ms.append((time.perf_counter() - t0) * 1e3)
                        first = False
                    out = h.send(h11.Response(status_code=200, headers=[("Content-Length", "2")]))
                    out += h.send(h11.Data(data=b"ok")) + h.send(h11.EndOfMessage())
                    conn.sendall(out)
                    if h.our_state is h11.DONE and h.their_state is h11.DONE:
                        h.start_next_cycle()
                    else:
                        return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def accuracy(delay_ms: float) -> tuple[float, float, bool]:
    srv = DelayServer(delay_ms / 1000)
    try:
        rep = run_probe(
            ProbeOptions(target=parse_url(f"http://127.0.0.1:{srv.port}/"), cold=30, warm=60)
        )
    finally:
        srv.close()
    total = next(c for c in rep.comparisons if c.phase == "total")
    applied = statistics.median(srv.applied_ms)
    # Cold also pays connect (~0.05 ms on loopback); the tolerance covers it, as it must.
    ok = abs(total.diff_ms - applied) <= 0.5 + 0.03 * applied
    return total.diff_ms, applied, ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    probe_ms, raw_ms, gap_ms, gap_us = overhead(args.rounds)
    print("## probe\n")
    print(f"Command: `uv run --all-extras python bench/bench_probe.py --rounds {args.rounds}`  ")
    print(
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print("| overhead (hello-world waitress, warm, 200 req × rounds, interleaved) | p50 ms |")
    print("|---|---|")
    print(f"| raw-socket client | {raw_ms:.3f} |")
    print(f"| lagscope probe | {probe_ms:.3f} |")
    print(
        f"| raw-socket client pausing {gap_us:.0f} µs between requests, as the probe does "
        f"| {gap_ms:.3f} |"
    )
    print(f"| ratio probe / raw back-to-back (target ≤ 1.1) | {probe_ms / raw_ms:.2f}× |")
    print(f"| ratio probe / raw with the probe's pause | {probe_ms / gap_ms:.2f}× |\n")
    print(
        "| accuracy: injected first-response delay d | applied (server-measured) ms "
        "| probe cold−warm ms | error ms | within ±(0.5 + 3 %)? |"
    )
    print("|---|---|---|---|---|")
    for d in (5.0, 50.0, 300.0):
        diff, applied, ok = accuracy(d)
        print(
            f"| {d:g} ms | {applied:.3f} | {diff:.3f} | {diff - applied:+.3f} | "
            f"{'yes' if ok else 'NO'} |"
        )


if __name__ == "__main__":
    main()

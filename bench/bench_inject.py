"""Benchmark ``lagscope inject`` with no faults: added latency, bulk throughput, idle memory.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_inject.py

Layout: the upstream (a small asyncio echo/bulk server) and the proxy (the real
``lagscope inject`` CLI) each run in their own process; the client runs here. Direct and
proxied measurements are interleaved in small blocks in one run, because this machine's
CPU speed switches every few seconds. A second latency row runs the proxy in-process
through the Python API (its loop on a thread), as tests and the ``serve`` benchmark do.
All traffic is loopback; every loop is bounded in count.

Figures: p50/p90 of a 64-byte warm ping-pong (direct, via proxy, difference), bulk
upstream-to-client throughput, and the proxy process's RSS growth for 1000 idle
connections (Linux /proc; "n/a" elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PING = b"p" * 64
BULK_BYTES = 256 * 1024 * 1024
IDLE_CONNECTIONS = 1000


# -- upstream server (child process) -------------------------------------------------------


async def _upstream_main() -> None:
    block = bytes(256 * 1024)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            if first.startswith(b"BULK "):
                remaining = int(first.split()[1])
                while remaining > 0:
                    chunk = block[: min(len(block), remaining)]
                    writer.write(chunk)
                    remaining -= len(chunk)
                    await writer.drain()
            else:
                data = first
                while data:
                    writer.write(data)
                    data = await reader.read(65536)
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- helpers ---------------------------------------------------------------------------------


@contextmanager
def _child(args: list[str], ready: Callable[[str], int | None]) -> Iterator[tuple[int, int]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(20):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{args[:4]} exited before it was ready")
            port = ready(line)
            if port is not None:
                yield proc.pid, port
                break
        else:
            raise RuntimeError(f"{args[:4]} printed no readiness line")
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()


def _ping_block(sock: socket.socket, n: int, out: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sock.sendall(PING)
        got = 0
        while got < len(PING):
            got += len(sock.recv(65536))
        out.append((time.perf_counter_ns() - t0) / 1e6)


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def latency(direct: tuple[str, int], proxied: tuple[str, int], rounds: int, block: int) -> str:
    d: list[float] = []
    p: list[float] = []
    with (
        socket.create_connection(direct, timeout=10) as ds,
        socket.create_connection(proxied, timeout=10) as ps,
    ):
        for s in (ds, ps):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _ping_block(ds, 200, [])
        _ping_block(ps, 200, [])
        for _ in range(rounds):
            _ping_block(ds, block, d)
            _ping_block(ps, block, p)
    d50, p50 = statistics.median(d), statistics.median(p)
    return (
        f"| {len(d)} | {d50:.3f} | {_pct(d, 90):.3f} | {p50:.3f} | {_pct(p, 90):.3f} "
        f"| {p50 - d50:.3f} | {p50 / d50:.2f} |"
    )


def _bulk_once(address: tuple[str, int], nbytes: int) -> float:
    buf = bytearray(1 << 20)
    with socket.create_connection(address, timeout=30) as s:
        t0 = time.perf_counter()
        s.sendall(b"BULK %d\n" % nbytes)
        got = 0
        while got < nbytes:
            n = s.recv_into(buf)
            if not n:
                raise RuntimeError("bulk stream ended early")
            got += n
        return nbytes / (time.perf_counter() - t0) / 1e6


def bulk(direct: tuple[str, int], proxied: tuple[str, int], rounds: int) -> str:
    d = []
    p = []
    for _ in range(rounds):
        d.append(_bulk_once(direct, BULK_BYTES // rounds))
        p.append(_bulk_once(proxied, BULK_BYTES // rounds))
    dm, pm = statistics.median(d), statistics.median(p)
    return f"| {BULK_BYTES >> 20} MiB in {rounds} | {dm:.0f} | {pm:.0f} | {pm / dm:.2f} |"


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    except OSError:
        return None
    return int(m.group(1)) if m else None


def idle_memory(pid: int, proxied: tuple[str, int]) -> str:
    before = _rss_kib(pid)
    socks = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            s = socket.create_connection(proxied, timeout=10)
            socks.append(s)
        for s in socks:  # one round trip each, so every upstream leg is really open
            s.sendall(b"x")
        for s in socks:
            s.recv(1)
        time.sleep(0.5)  # let the allocator settle before reading RSS (not a readiness wait)
        after = _rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    if before is None or after is None:
        return f"| {IDLE_CONNECTIONS} | n/a | n/a | n/a |"
    per = (after - before) / IDLE_CONNECTIONS
    return f"| {IDLE_CONNECTIONS} | {before / 1024:.1f} | {after / 1024:.1f} | {per:.1f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=40, help="interleaved latency blocks")
    ap.add_argument("--block", type=int, default=100, help="requests per latency block")
    args = ap.parse_args()
    if args.upstream_server:
        asyncio.run(_upstream_main())
        return

    py = sys.executable
    print(
        f"# bench_inject: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    with _child([py, __file__, "--upstream-server"], lambda ln: int(ln)) as (_, up_port):
        direct = ("127.0.0.1", up_port)
        ready = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

        def proxy_ready(line: str) -> int | None:
            m = ready.search(line)
            return int(m.group(1)) if m else None

        cli = [
            py,
            "-m",
            "lagscope",
            "inject",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            f"127.0.0.1:{up_port}",
        ]
        with _child(cli, proxy_ready) as (proxy_pid, proxy_port):
            proxied = ("127.0.0.1", proxy_port)
            print("\n## warm 64-byte round trip, ms (proxy = `lagscope inject` process)")
            print(
                "| requests each | direct p50 | direct p90 | proxy p50 | proxy p90 "
                "| added p50 | ratio |"
            )
            print("|---|---|---|---|---|---|---|")
            print(latency(direct, proxied, args.rounds, args.block))
            print("\n## bulk upstream->client throughput, MB/s (median of rounds)")
            print("| transfer | direct | proxy | ratio |")
            print("|---|---|---|---|")
            print(bulk(direct, proxied, 8))
            print("\n## proxy RSS with idle connections (MiB; KiB per connection)")
            print("| connections | RSS before | RSS with them open | KiB per connection |")
            print("|---|---|---|---|")
            print(idle_memory(proxy_pid, proxied))

        from lagscope.inject import Injector, Route

        with Injector([Route(("127.0.0.1", 0), direct)]) as inj:
            print("\n## warm 64-byte round trip, ms (proxy = in-process Injector thread)")
            print(
                "| requests each | direct p50 | direct p90 | proxy p50 | proxy p90 "
                "| added p50 | ratio |"
            )
            print("|---|---|---|---|---|---|---|")
            print(latency(direct, inj.address(0), args.rounds, args.block))


if __name__ == "__main__":
    main()

"""Benchmark for issue 5: the seed's serving configuration against ``lagscope serve``.

Run on demand (never in CI), on a throwaway PostgreSQL cluster, loopback only::

    uv run --all-extras --group bench python bench/bench_serve.py [--quick]

It prints a Markdown report (paste it into the "## serve" section of docs/performance.md).

What it measures, every comparison interleaved in one run and reported as a ratio, since
this machine's CPU speed swings by about +-30 % every few seconds:

1. **Cold start under a 300 ms per-connection tax** on every new HTTP connection (client ->
   server) and every new database connection (app -> PostgreSQL): first-request latency,
   and how many requests after start-up pay a database connect (connects counted at the
   database tax proxy, plus requests slower than the HTTP tax alone explains).
2. **Warm p50**, with the tax and without it, for both stacks (and lagscope serve behind a
   0 ms proxy, which separates the cost of the emulating proxy from the tax itself).
3. **Side by side on /api/items/** without the tax: waitress with the seed's settings,
   waitress with lagscope's defaults (``lagscope serve``), granian
   (``lagscope serve --server granian``), gunicorn gthread (Linux only): latency and
   throughput, bounded.
4. **Serving floor:** warm p50 through ``lagscope serve`` divided by the view's time in
   process (Django test client in a separate process, same database), interleaved batches.
5. **nginx in front** (when nginx is installed), with the tax on each new nginx -> app
   connection: the config from ``lagscope nginx-config`` against the same config without
   its three upstream keep-alive lines.

The tax is ``lagscope inject``'s :class:`ConnectionTax` (its Python API, ``Injector``), one
proxy per hop, each in its own child process (``_proxy`` mode) so its pumping never competes
with the bench client for the GIL. A user-space proxy cannot delay the kernel's handshake,
so the tax lands on the first bytes, as with stream-inspecting security software.

Child modes (used by the bench itself): ``_proxy``, ``_seed``, ``_inproc``, ``_prepare``;
``make_app()`` is the WSGI factory for gunicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import os
import platform
import queue
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
# tests/support holds the PostgreSQL cluster and port helpers the suite uses too.
sys.path.insert(0, str(ROOT / "tests"))
from support.net import free_port  # noqa: E402

PATH = "/api/items/"
TAX_MS = 300.0
# A request that paid a database connect under the tax takes at least TAX_MS longer than
# one that did not; half of it separates the two classes against ~15 ms of noise.
PAID_CONNECT_THRESHOLD_MS = TAX_MS / 2
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0

# Extra flags for every `lagscope serve` (waitress) started by the bench (--serve-arg).
SERVE_EXTRA_ARGS: list[str] = []

# The seed's waitress settings and its database setting, verbatim from the issue.
SEED_WAITRESS: dict[str, Any] = {
    "threads": 4,
    "connection_limit": 200,
    "channel_timeout": 3600,
    "cleanup_interval": 30,
    "backlog": 2048,
}


# --------------------------------------------------------------------------- child modes


def _configure_django(database_url: str, conn_max_age: int | None, health_checks: bool) -> None:
    import django
    from django.conf import settings

    from lagscope.demo.config import build_settings

    servertiming = os.environ.get("LAGSCOPE_DEMO_SERVERTIMING", "0") != "0"
    values = build_settings(database_url, Path(tempfile.gettempdir()), servertiming=servertiming)
    db = values["DATABASES"]["default"]
    db["CONN_MAX_AGE"] = conn_max_age
    db["CONN_HEALTH_CHECKS"] = health_checks
    settings.configure(**values)
    django.setup()


def make_app() -> Any:
    """WSGI factory for gunicorn: the reference app with persistent, health-checked
    connections (what a careful user would configure), database from BENCH_DB_URL."""
    _configure_django(os.environ["BENCH_DB_URL"], None, True)
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _child_prepare(database_url: str) -> None:
    _configure_django(database_url, 0, False)
    from django.db import connections

    from lagscope.demo.config import ITEM_COUNT
    from lagscope.demo.seed import ensure_database

    ensure_database(ITEM_COUNT)
    connections.close_all()


def _child_seed(database_url: str) -> None:
    """The seed: waitress with its settings, CONN_MAX_AGE=None, no pool, no prewarm."""
    _configure_django(database_url, None, False)
    from django.core.wsgi import get_wsgi_application
    from django.db import connections
    from waitress.server import create_server

    app = get_wsgi_application()
    connections.close_all()
    server = create_server(app, host="127.0.0.1", port=0, **SEED_WAITRESS)
    print(f"seed: listening on http://127.0.0.1:{server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def _child_inproc(database_url: str) -> None:
    """Serve timing requests on stdin: a line "N" runs N GETs in process, prints ms each."""
    _configure_django(database_url, None, False)
    from django.test import Client

    client = Client()
    print("inproc: ready", flush=True)
    for line in sys.stdin:
        count = int(line)
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            resp = client.get(PATH)
            body = resp.content
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 200 or len(body) < 1000:
                raise SystemExit(f"inproc: bad response {resp.status_code}")
        print(" ".join(f"{t:.4f}" for t in times), flush=True)


def _child_proxy(target: str, delay_ms: float) -> None:
    """The tax, from lagscope inject's Python API, in its own process (so its pumping never
    competes with the bench client for the GIL). stdin "count" -> "accepted N"."""
    from lagscope.inject import ConnectionTax, Injector, Route

    host, _, port_text = target.rpartition(":")
    faults = [ConnectionTax(delay_ms=delay_ms)] if delay_ms > 0 else []
    route = Route(listen=("127.0.0.1", 0), upstream=(host, int(port_text)), faults=faults)
    with Injector([route]) as inj:
        print(f"proxy: listening on http://127.0.0.1:{inj.address(0)[1]}", flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(f"accepted {inj.counters().accepted}", flush=True)


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A child process whose stdout lines are collected by a reader thread."""

    name: str
    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: list[str] = field(default_factory=list)
    port: int = 0

    def start_reader(self) -> None:
        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.log.append(line)
                self.lines.put(line)

        threading.Thread(target=read, name=f"read-{self.name}", daemon=True).start()

    def wait_line(self, pattern: str, timeout_s: float = READY_TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and self.lines.empty():
                break
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            m = rx.search(line)
            if m:
                return m
        tail = "\n".join(self.log[-15:])
        raise RuntimeError(f"{self.name}: no line matching {pattern!r}; output:\n{tail}")

    def ask(self, command: str, answer: str) -> re.Match[str]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.wait_line(answer)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdin:
            self.proc.stdin.close()


class Processes:
    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        stdin: bool = False,
        cwd: Path | None = None,
    ) -> Child:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
            cwd=str(cwd or ROOT),
        )
        child = Child(name, proc)
        child.start_reader()
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


URL_RE = r"(?i)listening (?:on|at):? (?:http://)?(?:\[[^\]]+\]|[\d.]+|[\w.-]+):(\d+)"


def _me(mode: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), mode, *args]


def start_proxy(procs: Processes, name: str, target_port: int, delay_ms: float) -> Child:
    child = procs.spawn(name, _me("_proxy", f"127.0.0.1:{target_port}", str(delay_ms)), stdin=True)
    child.port = int(child.wait_line(URL_RE).group(1))
    return child


def db_connects(proxy: Child) -> int:
    return int(proxy.ask("count", r"^accepted (\d+)").group(1))


def _db_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@dataclass
class Stack:
    """One server (+ optional tax proxies in front of it and of its database)."""

    name: str
    server: Child
    port: int  # where clients connect (the HTTP proxy when taxed)
    server_port: int
    db_proxy: Child | None = None
    http_proxy: Child | None = None
    db_connects_at_ready: int = 0


def _server_argv(kind: str, db_url: str) -> tuple[list[str], dict[str, str], Path | None]:
    if kind == "seed":
        return _me("_seed", db_url), {}, None
    if kind in ("serve", "granian"):
        server = ["--server", "granian"] if kind == "granian" else list(SERVE_EXTRA_ARGS)
        argv = [
            sys.executable,
            "-m",
            "lagscope",
            "serve",
            "--demo",
            "--database",
            db_url,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *server,
        ]
        return argv, {}, None
    if kind == "gunicorn":
        port = free_port()
        return (
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                "gthread",
                "-w",
                "2",
                "--threads",
                "2",
                "--keep-alive",
                "75",
                "-b",
                f"127.0.0.1:{port}",
                "--chdir",
                str(BENCH_DIR),
                "bench_serve:make_app()",
            ],
            {"BENCH_DB_URL": db_url},
            BENCH_DIR,
        )
    raise ValueError(kind)


def start_stack(
    procs: Processes,
    name: str,
    kind: str,
    pg_port: int,
    http_tax_ms: float | None,
    db_tax_ms: float | None,
) -> Stack:
    db_proxy = None
    db_port = pg_port
    if db_tax_ms is not None:
        db_proxy = start_proxy(procs, f"{name}-dbproxy", pg_port, db_tax_ms)
        db_port = db_proxy.port
    argv, env, cwd = _server_argv(kind, _db_url(db_port))
    server = procs.spawn(name, argv, env=env, cwd=cwd)
    server_port = int(server.wait_line(URL_RE).group(1))
    _wait_connect(server_port)
    at_ready = db_connects(db_proxy) if db_proxy is not None else 0
    http_proxy = None
    port = server_port
    if http_tax_ms is not None:
        http_proxy = start_proxy(procs, f"{name}-httpproxy", server_port, http_tax_ms)
        port = http_proxy.port
    return Stack(name, server, port, server_port, db_proxy, http_proxy, at_ready)


def _wait_connect(port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing accepts on 127.0.0.1:{port}")


def stop_stack(procs: Processes, stack: Stack) -> None:
    for child in (stack.http_proxy, stack.server, stack.db_proxy):
        if child is not None:
            procs.stop(child)


# --------------------------------------------------------------------------- HTTP client


class Client:
    """One keep-alive connection; counts silent reconnects (the server closed it)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        self.reconnects = 0
        self.requests = 0
        self.last_bytes = 0

    def get(self) -> float:
        t0 = time.perf_counter()
        self.conn.request("GET", PATH)
        resp = self.conn.getresponse()
        body = resp.read()
        elapsed_ms = (time.perf_counter() - t0) * 1000
        if resp.status != 200 or len(body) < 1000:
            raise RuntimeError(f"GET {PATH}: {resp.status}, {len(body)} bytes")
        self.last_bytes = len(body)
        if resp.will_close:
            self.reconnects += 1
        self.requests += 1
        return elapsed_ms

    def close(self) -> None:
        self.conn.close()


def concurrent(port: int, clients: int, per_client: int) -> list[tuple[int, float]]:
    """``clients`` new connections at once, ``per_client`` requests each: (index, ms)."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        c = Client(port)
        try:
            for i in range(per_client):
                ms = c.get()
                with lock:
                    results.append((i, ms))
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_TIMEOUT_S * per_client)
    if errors:
        raise errors[0]
    return results


def throughput_slice(port: int, clients: int, duration_s: float, cap: int) -> tuple[int, float]:
    """Keep-alive clients hammering for ``duration_s`` (at most ``cap`` requests each)."""
    counts = [0] * clients
    errors: list[BaseException] = []
    conns = [Client(port) for _ in range(clients)]
    for c in conns:  # connect and warm outside the timed window
        c.get()
    start = time.perf_counter()
    deadline = start + duration_s

    def run(k: int) -> None:
        try:
            while time.perf_counter() < deadline and counts[k] < cap:
                conns[k].get()
                counts[k] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    if errors:
        raise errors[0]
    return sum(counts), elapsed


# --------------------------------------------------------------------------- statistics


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def fmt(ms: float) -> str:
    return f"{ms:.1f}"


# --------------------------------------------------------------------------- phases


@dataclass
class ColdResult:
    first_ms: list[float] = field(default_factory=list)
    db_connects_after_start: list[int] = field(default_factory=list)
    paid_connect_requests: list[int] = field(default_factory=list)
    burst_requests: int = 0


def phase_cold(
    procs: Processes, pg_port: int, rounds: int, out: list[str]
) -> dict[str, ColdResult]:
    results = {"seed": ColdResult(), "serve": ColdResult()}
    for r in range(rounds):
        order = ["seed", "serve"] if r % 2 == 0 else ["serve", "seed"]
        for kind in order:
            stack = start_stack(procs, f"cold-{kind}", kind, pg_port, TAX_MS, TAX_MS)
            res = results[kind]
            try:
                first = Client(stack.port)
                first_ms = first.get()
                first.close()
                burst = concurrent(stack.port, clients=8, per_client=6)
                # First request on each new client connection pays the HTTP tax once.
                paid = sum(
                    1
                    for i, ms in [(0, first_ms), *burst]
                    if ms - (TAX_MS if i == 0 else 0.0) > PAID_CONNECT_THRESHOLD_MS
                )
                assert stack.db_proxy is not None
                connects = db_connects(stack.db_proxy) - stack.db_connects_at_ready
                res.first_ms.append(first_ms)
                res.db_connects_after_start.append(connects)
                res.paid_connect_requests.append(paid)
                res.burst_requests = 1 + len(burst)
                print(
                    f"  cold {kind} round {r}: first {first_ms:.0f} ms, db connects after "
                    f"start {connects}, slow requests {paid}",
                    file=sys.stderr,
                )
            finally:
                stop_stack(procs, stack)
    out.append("### Cold start, 300 ms tax on every new HTTP and database connection\n")
    out.append(
        f"{rounds} fresh starts per stack, alternating. After readiness: one request on a "
        "new connection (first-request latency), then 8 new keep-alive clients x 6 "
        "requests at once. Database connects are counted at the database tax proxy; "
        f"a request counts as having paid a connect when it took > "
        f"{PAID_CONNECT_THRESHOLD_MS:.0f} ms more than the HTTP tax it paid.\n"
    )
    out.append(
        "| stack | first request, ms (each start) | DB connects after start-up | "
        f"requests that paid a DB connect (of {results['seed'].burst_requests}) |"
    )
    out.append("|---|---|---|---|")
    for kind, label in (
        ("seed", "seed (waitress, CONN_MAX_AGE=None)"),
        ("serve", "lagscope serve"),
    ):
        res = results[kind]
        out.append(
            f"| {label} | {', '.join(fmt(x) for x in res.first_ms)} | "
            f"{', '.join(map(str, res.db_connects_after_start))} | "
            f"{', '.join(map(str, res.paid_connect_requests))} |"
        )
    s_first = statistics.median(results["serve"].first_ms)
    d_first = statistics.median(results["seed"].first_ms)
    out.append(
        f"\nFirst request, median: seed {fmt(d_first)} ms, serve {fmt(s_first)} ms; "
        f"the HTTP tax alone is {TAX_MS:.0f} ms (no server can avoid it on a new "
        "client connection).\n"
    )
    return results


def interleaved_latency(
    stacks: dict[str, int], rounds: int, warm: int = 20
) -> tuple[dict[str, list[float]], dict[str, int]]:
    clients = {name: Client(port) for name, port in stacks.items()}
    for c in clients.values():
        for _ in range(warm):
            c.get()
    samples: dict[str, list[float]] = {name: [] for name in stacks}
    names = list(stacks)
    rng = random.Random(5)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            samples[name].append(clients[name].get())
    reconnects = {name: c.reconnects for name, c in clients.items()}
    for c in clients.values():
        c.close()
    return samples, reconnects


def phase_warm(procs: Processes, pg_port: int, rounds: int, out: list[str]) -> None:
    specs = [
        ("seed-taxed", "seed", TAX_MS, TAX_MS),
        ("seed-direct", "seed", None, None),
        ("serve-taxed", "serve", TAX_MS, TAX_MS),
        ("serve-proxy0", "serve", 0.0, 0.0),
        ("serve-direct", "serve", None, None),
    ]
    stacks = {name: start_stack(procs, name, kind, pg_port, h, d) for name, kind, h, d in specs}
    try:
        for stack in stacks.values():
            concurrent(stack.port, clients=8, per_client=3)  # every thread has a DB connection
        samples, reconnects = interleaved_latency({n: s.port for n, s in stacks.items()}, rounds)
    finally:
        for stack in stacks.values():
            stop_stack(procs, stack)
    med = {n: statistics.median(v) for n, v in samples.items()}
    out.append("### Warm latency, with and without the tax (interleaved)\n")
    out.append(
        f"One keep-alive client per stack after warm-up (8 clients x 3 requests, then "
        f"20), {rounds} rounds, one request per stack per round in shuffled order. "
        "`proxy0`: the same tax proxies with 0 ms delay (the emulator's own cost).\n"
    )
    out.append("| stack | p50 ms | p90 ms | max ms | reconnects |")
    out.append("|---|---|---|---|---|")
    for name, v in samples.items():
        out.append(
            f"| {name} | {fmt(med[name])} | {fmt(p(v, 0.9))} | {fmt(max(v))} | {reconnects[name]} |"
        )
    out.append("")
    out.append(
        f"- **serve, taxed / direct: {med['serve-taxed'] / med['serve-direct']:.3f}x** "
        "(target <= 1.05x)"
    )
    out.append(
        f"- serve, taxed / 0 ms proxy (the tax alone): "
        f"{med['serve-taxed'] / med['serve-proxy0']:.3f}x"
    )
    out.append(f"- seed, taxed / direct: {med['seed-taxed'] / med['seed-direct']:.3f}x")
    out.append(
        f"- warm p50, serve / seed (direct): {med['serve-direct'] / med['seed-direct']:.3f}x\n"
    )


def phase_side_by_side(
    procs: Processes,
    pg_port: int,
    rounds: int,
    slice_s: float,
    rotations: int,
    out: list[str],
) -> None:
    specs: list[tuple[str, str]] = [
        ("waitress, seed settings", "seed"),
        ("waitress, lagscope defaults (serve)", "serve"),
        ("granian (serve --server granian)", "granian"),
    ]
    notes: list[str] = []
    if sys.platform.startswith("linux"):
        if importlib.util.find_spec("gunicorn") is not None:
            specs.append(("gunicorn gthread, 2 workers x 2 threads", "gunicorn"))
        else:
            notes.append("gunicorn not installed (`uv sync --group bench`): skipped.")
    stacks: dict[str, Stack] = {}
    try:
        for label, kind in specs:
            try:
                stacks[label] = start_stack(procs, kind, kind, pg_port, None, None)
            except RuntimeError as exc:
                notes.append(f"{label}: did not start ({str(exc).splitlines()[0]})")
        for stack in stacks.values():
            concurrent(stack.port, clients=8, per_client=3)
        samples, reconnects = interleaved_latency({n: s.port for n, s in stacks.items()}, rounds)
        served = {n: 0 for n in stacks}
        took = {n: 0.0 for n in stacks}
        names = list(stacks)
        rng = random.Random(7)
        for _ in range(rotations):
            rng.shuffle(names)
            for name in names:
                n, secs = throughput_slice(
                    stacks[name].port, clients=4, duration_s=slice_s, cap=5000
                )
                served[name] += n
                took[name] += secs
    finally:
        for stack in stacks.values():
            stop_stack(procs, stack)
    base = next(iter(samples))
    rps = {n: served[n] / took[n] for n in stacks}
    out.append("### Side by side on /api/items/ (PostgreSQL, no tax)\n")
    out.append(
        f"Latency: one keep-alive client each, {rounds} interleaved rounds. Throughput: 4 "
        f"keep-alive clients for {slice_s:g} s slices, {rotations} rotations over the "
        "servers in shuffled order (the client runs on the same 2 vCPUs).\n"
    )
    out.append("| server | p50 ms | p90 ms | p50 vs seed | req/s | req/s vs seed | reconnects |")
    out.append("|---|---|---|---|---|---|---|")
    for name, v in samples.items():
        out.append(
            f"| {name} | {fmt(statistics.median(v))} | {fmt(p(v, 0.9))} | "
            f"{statistics.median(v) / statistics.median(samples[base]):.2f}x | "
            f"{rps[name]:.0f} | {rps[name] / rps[base]:.2f}x | {reconnects[name]} |"
        )
    for note in notes:
        out.append(f"\n{note}")
    out.append("")


def phase_floor(
    procs: Processes, pg_port: int, batches: int, per_batch: int, out: list[str]
) -> None:
    stack = start_stack(procs, "floor-serve", "serve", pg_port, None, None)
    inproc = procs.spawn("inproc", _me("_inproc", _db_url(pg_port)), stdin=True)
    try:
        inproc.wait_line(r"^inproc: ready")
        assert inproc.proc.stdin is not None
        client = Client(stack.port)
        for _ in range(20):
            client.get()
        inproc.proc.stdin.write("20\n")
        inproc.proc.stdin.flush()
        inproc.wait_line(r"^[\d. ]+$")
        http_ms: list[float] = []
        view_ms: list[float] = []
        for _ in range(batches):
            inproc.proc.stdin.write(f"{per_batch}\n")
            inproc.proc.stdin.flush()
            line = inproc.wait_line(r"^[\d. ]+$").group(0)
            view_ms.extend(float(x) for x in line.split())
            http_ms.extend(client.get() for _ in range(per_batch))
        body_bytes = client.last_bytes
        client.close()
    finally:
        procs.stop(inproc)
        stop_stack(procs, stack)
    h, v = statistics.median(http_ms), statistics.median(view_ms)
    out.append("### Serving floor\n")
    out.append(
        f"{batches} alternating batches of {per_batch}: GET through `lagscope serve` "
        "(keep-alive) vs the same request through Django's test client in a separate "
        "process (persistent connection to the same database, no HTTP).\n"
    )
    out.append("| path | p50 ms | p90 ms |")
    out.append("|---|---|---|")
    out.append(f"| through lagscope serve | {fmt(h)} | {fmt(p(http_ms, 0.9))} |")
    out.append(f"| in process (test client) | {fmt(v)} | {fmt(p(view_ms, 0.9))} |")
    out.append(f"\n**serve / in process: {h / v:.3f}x** (target <= 1.15x)\n")
    out.append(f"Response body: {body_bytes} bytes.\n")


def _start_nginx(procs: Processes, name: str, upstream_port: int, strip: bool) -> Child:
    from lagscope.nginx.cli import find_nginx
    from lagscope.nginx.config import Endpoint
    from lagscope.nginx.render import NginxConfig, render

    nginx = find_nginx()
    assert nginx is not None
    prefix = Path(tempfile.mkdtemp(prefix="lagscope-bench-nginx-"))
    prefix.chmod(0o755)  # the worker runs as nobody under root
    port = free_port()
    text = render(
        NginxConfig(
            upstream=Endpoint("127.0.0.1", upstream_port),
            listen=(Endpoint("127.0.0.1", port),),
            prefix=prefix,
        )
    )
    if strip:
        pieces = ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";')
        text = "".join(ln for ln in text.splitlines(keepends=True) if ln.strip() not in pieces)
    (prefix / "nginx.conf").write_text(text)
    child = procs.spawn(
        name, [str(nginx), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    )
    _wait_connect(port)
    child.port = port
    return child


def phase_nginx(procs: Processes, pg_port: int, rounds: int, out: list[str]) -> None:
    from lagscope.nginx.cli import find_nginx

    out.append("### nginx in front, 300 ms tax on each new nginx -> app connection\n")
    if find_nginx() is None:
        out.append("nginx not installed: skipped.\n")
        return
    stack = start_stack(procs, "nginx-serve", "serve", pg_port, None, None)
    started: list[Child] = []
    try:
        tax_good = start_proxy(procs, "tax-good", stack.server_port, TAX_MS)
        tax_bad = start_proxy(procs, "tax-bad", stack.server_port, TAX_MS)
        started += [tax_good, tax_bad]
        good = _start_nginx(procs, "nginx-generated", tax_good.port, strip=False)
        bad = _start_nginx(procs, "nginx-stripped", tax_bad.port, strip=True)
        started += [good, bad]
        samples, _ = interleaved_latency(
            {"generated config": good.port, "without the 3 keep-alive lines": bad.port},
            rounds,
            warm=3,
        )
        upstream = {
            "generated config": db_connects(tax_good),
            "without the 3 keep-alive lines": db_connects(tax_bad),
        }
    finally:
        for child in reversed(started):
            procs.stop(child)
        stop_stack(procs, stack)
    out.append(
        f"`lagscope serve` behind nginx (nginx {_nginx_version()}) with the config from "
        "`lagscope nginx-config`, and the same config without its three upstream "
        f"keep-alive lines; {rounds} interleaved rounds on one keep-alive client "
        "connection each (after 3 warm-up requests).\n"
    )
    out.append("| nginx config | p50 ms | p90 ms | upstream connections opened |")
    out.append("|---|---|---|---|")
    total = rounds + 3
    for name, v in samples.items():
        out.append(
            f"| {name} | {fmt(statistics.median(v))} | {fmt(p(v, 0.9))} | "
            f"{upstream[name]} for {total} requests |"
        )
    out.append("")


def _nginx_version() -> str:
    from lagscope.nginx.cli import find_nginx

    nginx = find_nginx()
    if nginx is None:
        return "absent"
    res = subprocess.run([str(nginx), "-v"], capture_output=True, text=True, check=False)
    return res.stderr.strip().rpartition("/")[2]


# --------------------------------------------------------------------------- main


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine(pg_version: str) -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} vCPU ({cpu}), "
        f"Python {platform.python_version()}, Django {_version('django')}, waitress "
        f"{_version('waitress')}, granian {_version('granian')}, gunicorn "
        f"{_version('gunicorn')}, psycopg {_version('psycopg')}, PostgreSQL {pg_version}"
    )


@contextlib.contextmanager
def _pg() -> Iterator[Any]:
    from support.pg import destroy_cluster, make_cluster

    cluster = make_cluster()
    try:
        yield cluster
    finally:
        destroy_cluster(cluster)


def main(argv: list[str]) -> int:
    if argv and argv[0].startswith("_"):
        mode, args = argv[0], argv[1:]
        children: dict[str, Callable[..., None]] = {
            "_proxy": lambda t, d: _child_proxy(t, float(d)),
            "_seed": _child_seed,
            "_inproc": _child_inproc,
            "_prepare": _child_prepare,
        }
        with contextlib.suppress(KeyboardInterrupt):
            children[mode](*args)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument(
        "--phases",
        default="cold,warm,side,floor,nginx",
        help="comma-separated subset of cold,warm,side,floor,nginx",
    )
    ap.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for every `lagscope serve` (repeatable), e.g. --serve-arg=--threads=4",
    )
    ap.add_argument(
        "--servertiming",
        action="store_true",
        help="keep the lagscope Server-Timing middleware in the demo app",
    )
    ns = ap.parse_args(argv)
    phases = set(ns.phases.split(","))
    unknown = phases - {"cold", "warm", "side", "floor", "nginx"}
    if unknown:
        ap.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    SERVE_EXTRA_ARGS[:] = ns.serve_arg
    if shutil.which("initdb") is None and not list(Path("/usr/lib/postgresql").glob("*/bin")):
        print("bench_serve: PostgreSQL server binaries not found", file=sys.stderr)
        return 8
    os.environ["LAGSCOPE_DEMO_SERVERTIMING"] = "1" if ns.servertiming else "0"
    cold_rounds, warm_rounds, sbs_rounds, slice_s, rotations, batches, nginx_rounds = (
        (1, 40, 30, 1.0, 1, 10, 5) if ns.quick else (3, 300, 200, 1.5, 6, 80, 30)
    )
    procs = Processes()
    out: list[str] = []
    started = time.monotonic()
    with _pg() as cluster:
        pg_version = cluster.psql("show server_version").strip()
        prep = procs.spawn("prepare", _me("_prepare", _db_url(cluster.port)))
        prep.proc.wait(300)
        procs.stop(prep)
        if prep.proc.returncode != 0:
            print("\n".join(prep.log), file=sys.stderr)
            return 1
        try:
            if "cold" in phases:
                phase_cold(procs, cluster.port, cold_rounds, out)
            if "warm" in phases:
                phase_warm(procs, cluster.port, warm_rounds, out)
            if "side" in phases:
                phase_side_by_side(procs, cluster.port, sbs_rounds, slice_s, rotations, out)
            if "floor" in phases:
                phase_floor(procs, cluster.port, batches, 5, out)
            if "nginx" in phases:
                phase_nginx(procs, cluster.port, nginx_rounds, out)
        finally:
            procs.stop_all()
    cmd = (
        "uv run --all-extras --group bench python bench/bench_serve.py"
        + (" --quick" if ns.quick else "")
        + (" --servertiming" if ns.servertiming else "")
        + (f" --phases {ns.phases}" if phases != {"cold", "warm", "side", "floor", "nginx"} else "")
        + "".join(f" --serve-arg={a}" for a in ns.serve_arg)
    )
    header = [
        f"Command: `{cmd}` ({time.monotonic() - started:.0f} s). ",
        f"Machine: {_machine(pg_version)}. ",
        "App: the reference app (`lagscope.demo`) on PostgreSQL, /api/items/ (500 rows of "
        "JSON), Server-Timing middleware " + ("on" if ns.servertiming else "off") + ".\n",
    ]
    print("\n".join(header + out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

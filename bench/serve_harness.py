"""Shared helpers of the serve benchmarks: child processes with readiness lines, server
stacks (optionally behind tax proxies), keep-alive clients, percentiles, the machine line.

Imported by bench_serve.py and serve_load.py from the same directory (a script's own
directory is on ``sys.path``); nothing here reaches into tests/.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import os
import platform
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_children import PATH

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
BENCH_SCRIPT = BENCH_DIR / "bench_serve.py"
TAX_MS = 300.0
READY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0

# Extra flags for every `lagscope serve` (waitress) started by the bench (--serve-arg).
SERVE_EXTRA_ARGS: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    return [sys.executable, str(BENCH_SCRIPT), mode, *args]


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


def _serve_argv(db_url: str, *extra: str) -> list[str]:
    return [
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
        *extra,
    ]


def _server_argv(kind: str, db_url: str) -> tuple[list[str], dict[str, str], Path | None]:
    """Server kinds: ``handtuned`` (the hand-tuned waitress), ``serve`` (lagscope serve with
    --serve-arg extras), ``serve-w1`` / ``serve-w2`` (--workers 1 / 2), ``granian`` /
    ``granian-w2``, ``gunicorn`` (gthread, 2 workers x 2 threads)."""
    if kind == "handtuned":
        return _me("_handtuned", db_url), {}, None
    if kind == "serve":
        return _serve_argv(db_url, *SERVE_EXTRA_ARGS), {}, None
    if kind in ("serve-w1", "serve-w2"):
        return _serve_argv(db_url, "--workers", kind[-1]), {}, None
    if kind == "granian":
        return _serve_argv(db_url, "--server", "granian"), {}, None
    if kind == "granian-w2":
        return _serve_argv(db_url, "--server", "granian", "--workers", "2"), {}, None
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
                "serve_children:make_app()",
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
    db_url: str | None = None,
) -> Stack:
    """``db_url`` (e.g. a SQLite file) replaces the cluster on ``pg_port`` (no database tax
    then)."""
    db_proxy = None
    db_port = pg_port
    if db_tax_ms is not None:
        db_proxy = start_proxy(procs, f"{name}-dbproxy", pg_port, db_tax_ms)
        db_port = db_proxy.port
    argv, env, cwd = _server_argv(kind, db_url or _db_url(db_port))
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


# --------------------------------------------------------------------------- statistics


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def fmt(ms: float) -> str:
    return f"{ms:.1f}"


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
    from lagscope.demo.pgcluster import PgCluster

    with PgCluster.create() as cluster:
        yield cluster

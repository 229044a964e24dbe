"""Reload after a code edit: ``lagscope serve --reload`` against runserver, ``gunicorn
--reload`` and ``granian --reload``, side by side in one run, on the reference app with
PostgreSQL, behind a 300 ms per-connection tax on the client's hop and the database's.

    uv run --all-extras --group bench python bench/bench_reload.py [--edits 20] [--others 5]

A throwaway project (settings = the reference app's plus one middleware that stamps every
response with ``X-Code-Version`` from a module the bench rewrites) is served by each
server in turn. A keep-alive client requests ``/api/items/`` every 50 ms through the tax
proxy while the bench edits the version module; for each edit it records the first
response carrying the new version (its latency and whether it came on the client's
existing connection), the edit-to-served time, failed requests and connections the server
closed. Database connects are counted at the database's tax proxy (ground truth: every
connect crosses it); a request that paid one would take more than the tax. ``overhead``:
warm p50 of ``serve`` against ``serve --reload`` without a tax, interleaved.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from serve_harness import (
    TAX_MS,
    Child,
    Processes,
    _db_url,
    _machine,
    _me,
    _pg,
    _wait_connect,
    db_connects,
    free_port,
    start_proxy,
)
from serve_load import tree_cpu_s

PATH = "/api/items/"
VERSION_HEADER = "X-Code-Version"
INTERVAL_S = 0.05
# After the new version is seen, before the next edit (a developer looks at the page; the
# next app process, started 2 s after a switch, gets to import its libraries).
SETTLE_S = 5.0
EDIT_BOUND_S = 60.0

# Persistent, health-checked database connections for the other servers (what a careful
# user configures; lagscope serve applies its own plan, a prewarmed pool, over them).
SETTINGS = """
from lagscope.refapp.settings import *  # noqa
MIDDLEWARE = ["benchsite_version.VersionMiddleware", *MIDDLEWARE]
DATABASES["default"]["CONN_MAX_AGE"] = None
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
"""
VERSION = """
VERSION = "{n}"


class VersionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Code-Version"] = VERSION
        return response
"""
# The front's own cost shows best where the app costs least.
HELLO = """
def app(environ, start_response):
    body = b"hello world\\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""
WSGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite_settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
"""


def write_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchsite_settings.py").write_text(SETTINGS)
    (root / "benchsite_wsgi.py").write_text(WSGI)
    (root / "benchsite_hello.py").write_text(HELLO)
    set_version(root, 1)


def set_version(root: Path, n: int) -> None:
    (root / "benchsite_version.py").write_text(VERSION.format(n=n))


def server_argv(kind: str, port: int) -> list[str]:
    py = sys.executable
    if kind == "lagscope":
        return [py, "-m", "lagscope", "serve", "--django-settings", "benchsite_settings",
                "--reload", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if kind == "serve":  # no --reload: the overhead baseline
        return [py, "-m", "lagscope", "serve", "--django-settings", "benchsite_settings",
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if kind in ("hello", "hello-reload"):  # the overhead on the cheapest app
        reload = ["--reload"] if kind == "hello-reload" else []
        return [py, "-m", "lagscope", "serve", "benchsite_hello:app", *reload,
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if kind == "runserver":
        return [py, "-m", "django", "runserver", f"127.0.0.1:{port}",
                "--settings", "benchsite_settings"]  # fmt: skip
    if kind == "gunicorn":
        return [py, "-m", "gunicorn", "--reload", "-k", "gthread", "-w", "1", "--threads",
                "2", "--keep-alive", "75", "-b", f"127.0.0.1:{port}",
                "benchsite_wsgi:application"]  # fmt: skip
    if kind == "granian":
        return [py, "-m", "granian", "--interface", "wsgi", "--reload", "--host",
                "127.0.0.1", "--port", str(port), "benchsite_wsgi:application"]  # fmt: skip
    raise ValueError(kind)


@dataclass
class Sample:
    sent_s: float
    latency_ms: float
    version: str  # "" when failed
    reused: bool
    error: str = ""


@dataclass
class Pacer:
    """The client: a request every 50 ms on one keep-alive connection (reconnects counted)."""

    port: int
    samples: list[Sample] = field(default_factory=list)
    reconnects: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        for _ in range(100_000):  # bounded; stopped long before
            if self.stop.is_set():
                break
            reused = conn is not None
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            t0 = time.perf_counter()
            try:
                conn.request("GET", PATH)
                resp = conn.getresponse()
                body = resp.read()
                ms = (time.perf_counter() - t0) * 1000
                ok = resp.status == 200 and len(body) > 1000
                version = resp.getheader(VERSION_HEADER, "") if ok else ""
                self.samples.append(Sample(t0, ms, version, reused, "" if ok else str(resp.status)))
                if resp.will_close:
                    conn.close()
                    conn = None
                    self.reconnects += 1
            except (OSError, http.client.HTTPException) as exc:
                ms = (time.perf_counter() - t0) * 1000
                self.samples.append(Sample(t0, ms, "", reused, type(exc).__name__))
                if conn is not None:
                    conn.close()
                conn = None
                self.reconnects += 1
            self.stop.wait(max(0.0, INTERVAL_S - (time.perf_counter() - t0)))
        if conn is not None:
            conn.close()


@dataclass
class EditResult:
    edit_to_served_ms: float
    first_ms: float
    first_reused: bool


@dataclass
class Run:
    kind: str
    warm_p50_ms: float = 0.0
    warm_ms: list[float] = field(default_factory=list)
    edits: list[EditResult] = field(default_factory=list)
    failed: int = 0
    closed_by_server: int = 0
    requests: int = 0
    db_connects_after_start: int = 0
    slowest_ms: float = 0.0
    reload_lines: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def run_server(
    procs: Processes, kind: str, pg_port: int, site: Path, edits: int, tax_ms: float
) -> Run:
    set_version(site, 1)
    db_proxy = start_proxy(procs, f"{kind}-db", pg_port, tax_ms)
    port = free_port()
    env = {"LAGSCOPE_DEMO_DATABASE": _db_url(db_proxy.port), "PYTHONPATH": str(site)}
    server = procs.spawn(kind, server_argv(kind, port), env=env, cwd=site)
    _wait_connect(port)
    http_proxy = start_proxy(procs, f"{kind}-http", port, tax_ms)
    result = Run(kind)
    pacer = Pacer(http_proxy.port)
    thread = threading.Thread(target=pacer.run, name=f"pacer-{kind}")
    thread.start()
    try:
        wait_version(pacer, "1", 0)
        time.sleep(SETTLE_S * 2)  # warm: the first requests' own connects are behind us
        at_start = db_connects(db_proxy)
        warm_from = len(pacer.samples)
        for n in range(2, edits + 2):
            mark = len(pacer.samples)
            edited_s = time.perf_counter()
            set_version(site, n)
            first = wait_version(pacer, str(n), mark)
            result.edits.append(
                EditResult(
                    (first.sent_s + first.latency_ms / 1000 - edited_s) * 1000,
                    first.latency_ms,
                    first.reused,
                )
            )
            time.sleep(SETTLE_S)
        result.db_connects_after_start = db_connects(db_proxy) - at_start
    finally:
        pacer.stop.set()
        thread.join(30)
        for child in (http_proxy, server, db_proxy):
            procs.stop(child)
    samples = pacer.samples[warm_from:]
    firsts = {id(s) for s in first_samples(samples)}
    warm = [s.latency_ms for s in samples if s.version and s.reused and id(s) not in firsts]
    result.warm_p50_ms = statistics.median(warm) if warm else float("nan")
    result.warm_ms = warm
    result.failed = sum(1 for s in samples if not s.version)
    result.errors = dict(Counter(s.error or "no version header" for s in samples if not s.version))
    result.closed_by_server = pacer.reconnects
    result.requests = len(samples)
    result.slowest_ms = max(s.latency_ms for s in samples)
    result.reload_lines = [line for line in server.log if "reloaded in" in line]
    return result


def first_samples(samples: list[Sample]) -> list[Sample]:
    """The first response of each new version."""
    seen: set[str] = set()
    out = []
    for s in samples:
        if s.version and s.version not in seen:
            seen.add(s.version)
            out.append(s)
    return out[1:]


def wait_version(pacer: Pacer, version: str, start: int) -> Sample:
    deadline = time.monotonic() + EDIT_BOUND_S
    index = start
    while time.monotonic() < deadline:
        while index < len(pacer.samples):
            sample = pacer.samples[index]
            index += 1
            if sample.version == version:
                return sample
        time.sleep(0.01)
    raise RuntimeError(f"version {version} not served within {EDIT_BOUND_S:g} s")


def wait_idle(pid: int, bound_s: float = 120.0) -> None:
    """Until the process tree of ``pid`` uses under 20 ms of CPU in 0.5 s (bounded)."""
    deadline = time.monotonic() + bound_s
    before = tree_cpu_s(pid)
    while before is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        now = tree_cpu_s(pid) or 0.0
        if now - before < 0.02:
            return
        before = now


def overhead(procs: Processes, pg_port: int, site: Path, rounds: int, per: int) -> list[str]:
    """Warm p50 and server CPU per request of serve against serve --reload, no tax,
    interleaved rounds on one keep-alive connection each: a hello-world WSGI app (the
    front's cost alone) and the reference app's /api/items/ on PostgreSQL."""
    set_version(site, 1)
    env = {"LAGSCOPE_DEMO_DATABASE": _db_url(pg_port), "PYTHONPATH": str(site)}
    pairs = {"hello world": ("hello", "hello-reload", "/"), PATH: ("serve", "lagscope", PATH)}
    out = []
    for label, (plain_kind, reload_kind, path) in pairs.items():
        ports = {}
        children: list[Child] = []
        for kind in (plain_kind, reload_kind):
            port = free_port()
            children.append(procs.spawn(f"ovh-{kind}", server_argv(kind, port), env=env, cwd=site))
            _wait_connect(port)
            ports[kind] = port
        conns = {
            k: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for k, p in ports.items()
        }
        times: dict[str, list[float]] = {k: [] for k in ports}
        pids = {kind: child.proc.pid for kind, child in zip(ports, children, strict=True)}
        for pid in pids.values():
            wait_idle(pid)  # the reload front's spare app process has imported its libraries
        count = per * (10 if label == "hello world" else 1)
        cpu_s: dict[str, float] = {}
        for r in range(rounds + 1):
            if r == 1:  # the first round warms
                cpu_s = {kind: tree_cpu_s(pid) or 0.0 for kind, pid in pids.items()}
            for kind, conn in conns.items() if r % 2 else reversed(conns.items()):
                for _ in range(count):
                    t0 = time.perf_counter()
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    resp.read()
                    if r > 0:
                        times[kind].append((time.perf_counter() - t0) * 1000)
        cpu_ms = {
            kind: ((tree_cpu_s(pid) or 0.0) - cpu_s[kind]) * 1000 / len(times[kind])
            for kind, pid in pids.items()
        }
        for conn in conns.values():
            conn.close()
        for child in children:
            procs.stop(child)
        plain = statistics.median(times[plain_kind])
        front = statistics.median(times[reload_kind])
        n = len(times[plain_kind])
        out += [
            f"| {label} | serve | {n} | {plain:.3f} | {cpu_ms[plain_kind]:.3f} |",
            f"| {label} | serve --reload | {n} | {front:.3f} | {cpu_ms[reload_kind]:.3f} |",
            f"| {label} | added by --reload | | {front - plain:+.3f} ({front / plain:.3f}x) | "
            f"{cpu_ms[reload_kind] - cpu_ms[plain_kind]:+.3f} |",
        ]
        print("\n".join(out[-3:]), flush=True)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20, help="edits for lagscope --reload")
    parser.add_argument("--others", type=int, default=5, help="edits for each other server")
    parser.add_argument("--servers", default="lagscope,runserver,gunicorn,granian")
    parser.add_argument("--overhead-rounds", type=int, default=10)
    parser.add_argument(
        "--overhead-only", action="store_true", help="only the serve / serve --reload rows"
    )
    args = parser.parse_args(argv)
    procs = Processes()
    out: list[str] = []
    with _pg() as cluster, tempfile.TemporaryDirectory() as tmp:
        pg_version = cluster.psql("show server_version").strip()
        site = Path(tmp) / "site"
        write_project(site)
        prep = procs.spawn("prepare", _me("_prepare", _db_url(cluster.port)))
        prep.proc.wait(300)
        procs.children.remove(prep)
        try:
            out.append(f"machine: {_machine(pg_version)}")
            out.append(
                f"tax: {TAX_MS:g} ms per new connection on the client's and the database's hop"
            )
            out.append("")
            out.append("| server | edits | warm p50 ms | first new-code response ms (median, max) "
                       "| on the kept connection | edit to served ms (median, max) | failed "
                       "| closed by server | DB connects after start | slowest ms |")  # fmt: skip
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            runs = []
            notes: list[str] = []
            for kind in [] if args.overhead_only else args.servers.split(","):
                edits = args.edits if kind == "lagscope" else args.others
                run = run_server(procs, kind, cluster.port, site, edits, TAX_MS)
                runs.append(run)
                firsts = [e.first_ms for e in run.edits]
                served = [e.edit_to_served_ms for e in run.edits]
                kept = sum(e.first_reused for e in run.edits)
                out.append(
                    f"| {kind} | {len(run.edits)} | {run.warm_p50_ms:.1f} | "
                    f"{statistics.median(firsts):.1f}, {max(firsts):.1f} | {kept} of "
                    f"{len(run.edits)} | {statistics.median(served):.0f}, {max(served):.0f} | "
                    f"{run.failed} of {run.requests} | {run.closed_by_server} | "
                    f"{run.db_connects_after_start} | {run.slowest_ms:.0f} |"
                )
                print(out[-1], flush=True)
                if run.errors:
                    notes.append(f"{kind} failures: {run.errors}")
            out.extend(notes)
            for run in runs:
                if run.kind == "lagscope":
                    out.append("")
                    out.append("lagscope --reload, per edit: first new-code response vs the "
                               "target 1.2 x warm p50 + 5 ms; edit to served vs import + "
                               "prewarm + 0.5 s:")  # fmt: skip
                    limit = 1.2 * run.warm_p50_ms + 5
                    over = sum(1 for ms in run.warm_ms if ms > limit)
                    out.append(
                        f"  (for scale: {over} of {len(run.warm_ms)} warm requests, "
                        f"{100 * over / max(1, len(run.warm_ms)):.1f} %, took longer than "
                        f"{limit:.1f} ms)"
                    )
                    for edit, line in zip(run.edits, run.reload_lines, strict=False):
                        m = re.search(
                            r"import (\d+) ms \(libraries (\d+) ms before\), checks (\d+) ms, "
                            r"prewarm (\d+) ms",
                            line,
                        )
                        budget = sum(int(g) for g in m.groups()) + 500 if m else float("nan")
                        out.append(
                            f"  first {edit.first_ms:.1f} ms (limit {limit:.1f}), edit to "
                            f"served {edit.edit_to_served_ms:.0f} ms (budget {budget:.0f})"
                        )
            out.append("")
            out.append(
                "| no tax, interleaved | server | requests | warm p50 ms | "
                "server CPU ms per request |"
            )
            out.append("|---|---|---|---|---|")
            out.extend(overhead(procs, cluster.port, site, args.overhead_rounds, 30))
        finally:
            procs.stop_all()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

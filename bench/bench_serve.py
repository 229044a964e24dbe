"""The hand-tuned serving configuration of the original report against ``lagscope serve``.

Run on demand (never in CI), on a throwaway PostgreSQL cluster, loopback only::

    uv run --all-extras --group bench python bench/bench_serve.py [--quick]

It prints a Markdown report (paste it into the "## serve" section of docs/performance.md).
Every comparison is interleaved in one run and reported as a ratio, since this machine's
CPU speed swings by about +-30 % every few seconds:

1. **Cold start under a 300 ms per-connection tax** on every new HTTP connection (client ->
   server) and every new database connection (app -> PostgreSQL): first-request latency,
   and the database connects after start-up, counted at the database tax proxy (ground
   truth: every connect passes through it).
2. **Warm p50**, with the tax and without it, for both stacks (and lagscope serve behind a
   0 ms proxy, which separates the cost of the emulating proxy from the tax itself).
3. **Side by side on /api/items/** without the tax (Python keep-alive clients).
4. **Serving floor:** warm p50 through ``lagscope serve`` divided by the view's time in
   process (Django test client in a separate process, same database), interleaved batches.
5. **nginx in front** (when nginx is installed), with the tax on each new nginx -> app
   connection.
6. **load** (``serve_load.py``): req/s and p50/p99 at ``hey -c 1`` and ``-c 8`` for
   ``serve --workers 1`` and ``2``, granian 2 workers, gunicorn gthread 2x2 and the
   hand-tuned waitress, on PostgreSQL and on SQLite (``--load-databases``), with hey's
   connections per server process.

The tax is ``lagscope inject``'s ``ConnectionTax``, one proxy process per hop. Shared
helpers live in ``serve_harness.py``, the child processes in ``serve_children.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from serve_children import run_child
from serve_harness import (
    SERVE_EXTRA_ARGS,
    TAX_MS,
    Child,
    Client,
    Processes,
    Stack,
    _db_url,
    _machine,
    _me,
    _pg,
    _wait_connect,
    concurrent,
    db_connects,
    fmt,
    free_port,
    interleaved_latency,
    p,
    start_proxy,
    start_stack,
    stop_stack,
    throughput_slice,
)
from serve_load import phase_load

# --------------------------------------------------------------------------- phases


@dataclass
class ColdResult:
    first_ms: list[float] = field(default_factory=list)
    db_connects_after_start: list[int] = field(default_factory=list)
    burst_requests: int = 0


def phase_cold(
    procs: Processes, pg_port: int, rounds: int, out: list[str]
) -> dict[str, ColdResult]:
    results = {"handtuned": ColdResult(), "serve": ColdResult(), "serve-w2": ColdResult()}
    for r in range(rounds):
        order = list(results) if r % 2 == 0 else list(reversed(results))
        for kind in order:
            stack = start_stack(procs, f"cold-{kind}", kind, pg_port, TAX_MS, TAX_MS)
            res = results[kind]
            try:
                first = Client(stack.port)
                first_ms = first.get()
                first.close()
                burst = concurrent(stack.port, clients=8, per_client=6)
                assert stack.db_proxy is not None
                # Ground truth: every database connection passes through this proxy.
                connects = db_connects(stack.db_proxy) - stack.db_connects_at_ready
                res.first_ms.append(first_ms)
                res.db_connects_after_start.append(connects)
                res.burst_requests = 1 + len(burst)
                print(
                    f"  cold {kind} round {r}: first {first_ms:.0f} ms, db connects after "
                    f"start {connects}",
                    file=sys.stderr,
                )
            finally:
                stop_stack(procs, stack)
    out.append("### Cold start, 300 ms tax on every new HTTP and database connection\n")
    out.append(
        f"{rounds} fresh starts per stack, alternating. After readiness: one request on a "
        "new connection (first-request latency), then 8 new keep-alive clients x 6 "
        f"requests at once ({results['handtuned'].burst_requests} requests). Database connects "
        "after start-up are counted at the database tax proxy, which every database "
        "connection passes through (ground truth, not inferred from latency): each one is "
        "a 300 ms connect that a request waited for or, with a pool, a refill.\n"
    )
    out.append("| stack | first request, ms (each start) | DB connects after start-up |")
    out.append("|---|---|---|")
    for kind, label in (
        ("handtuned", "hand-tuned waitress (CONN_MAX_AGE=None)"),
        ("serve", "lagscope serve"),
        ("serve-w2", "lagscope serve --workers 2"),
    ):
        res = results[kind]
        out.append(
            f"| {label} | {', '.join(fmt(x) for x in res.first_ms)} | "
            f"{', '.join(map(str, res.db_connects_after_start))} |"
        )
    s_first = statistics.median(results["serve"].first_ms)
    d_first = statistics.median(results["handtuned"].first_ms)
    out.append(
        f"\nFirst request, median: hand-tuned {fmt(d_first)} ms, serve {fmt(s_first)} ms; "
        f"the HTTP tax alone is {TAX_MS:.0f} ms (no server can avoid it on a new "
        "client connection).\n"
    )
    return results


def phase_warm(procs: Processes, pg_port: int, rounds: int, out: list[str]) -> None:
    specs = [
        ("handtuned-taxed", "handtuned", TAX_MS, TAX_MS),
        ("handtuned-direct", "handtuned", None, None),
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
    hand_taxed, hand_direct = med["handtuned-taxed"], med["handtuned-direct"]
    out.append(f"- hand-tuned, taxed / direct: {hand_taxed / hand_direct:.3f}x")
    out.append(
        f"- warm p50, serve / hand-tuned (direct): {med['serve-direct'] / hand_direct:.3f}x\n"
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
        ("waitress, hand-tuned settings", "handtuned"),
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
    out.append(
        "| server | p50 ms | p90 ms | p50 vs hand-tuned | req/s | req/s vs hand-tuned "
        "| reconnects |"
    )
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
    from lagscope.nginx.binary import find_nginx
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
    from lagscope.nginx.binary import find_nginx

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
    from lagscope.nginx.binary import find_nginx

    nginx = find_nginx()
    if nginx is None:
        return "absent"
    res = subprocess.run([str(nginx), "-v"], capture_output=True, text=True, check=False)
    return res.stderr.strip().rpartition("/")[2]


# --------------------------------------------------------------------------- main


PHASES = ("cold", "warm", "side", "floor", "nginx", "load")


def main(argv: list[str]) -> int:
    if argv and argv[0].startswith("_"):
        run_child(argv[0], argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    ap.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated subset of " + ",".join(PHASES),
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
    ap.add_argument(
        "--load-databases",
        default="postgresql,sqlite",
        help="databases of the load phase: postgresql, sqlite or both (comma-separated)",
    )
    ns = ap.parse_args(argv)
    phases = set(ns.phases.split(","))
    unknown = phases - set(PHASES)
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
    load_slice_s, load_rotations = (2.0, 1) if ns.quick else (5.0, 3)
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
            if "load" in phases:
                databases: list[tuple[str, str | None]] = [("PostgreSQL", None)]
                if "sqlite" in ns.load_databases:
                    sqlite_url = (
                        f"sqlite:///{Path(tempfile.mkdtemp(prefix='lagscope-bench-'))}/demo.sqlite3"
                    )
                    prep = procs.spawn("prepare-sqlite", _me("_prepare", sqlite_url))
                    prep.proc.wait(300)
                    procs.stop(prep)
                    databases.append(("SQLite", sqlite_url))
                if "postgresql" not in ns.load_databases:
                    databases = databases[1:]
                phase_load(procs, cluster.port, load_slice_s, load_rotations, out, databases)
        finally:
            procs.stop_all()
    cmd = (
        "uv run --all-extras --group bench python bench/bench_serve.py"
        + (" --quick" if ns.quick else "")
        + (" --servertiming" if ns.servertiming else "")
        + (f" --phases {ns.phases}" if phases != set(PHASES) else "")
        + "".join(f" --serve-arg={a}" for a in ns.serve_arg)
        + (
            f" --load-databases {ns.load_databases}"
            if ns.load_databases != "postgresql,sqlite"
            else ""
        )
    )
    header = [
        f"Command: `{cmd}` ({time.monotonic() - started:.0f} s). ",
        f"Machine: {_machine(pg_version)}. ",
        "App: the reference app (`lagscope.refapp`) on PostgreSQL, /api/items/ (500 rows of "
        "JSON), Server-Timing middleware " + ("on" if ns.servertiming else "off") + ".\n",
    ]
    if ns.quick:
        header.append(
            "**--quick is a smoke run:** one rotation of 1 s throughput slices and 2 s hey "
            "slices. On this machine such short slices disagree with full runs by more than "
            "the differences measured (CPU speed swings every few seconds); do not quote "
            "these figures.\n"
        )
    print("\n".join(header + out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

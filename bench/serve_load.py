"""The load phase of bench_serve.py: req/s and p50/p99 with ``hey`` (a real load generator,
Debian package ``hey``) against every multi-core option, side by side in one run.

Servers: ``lagscope serve --workers 1`` and ``--workers 2``, granian 2 workers (``serve
--server granian --workers 2``), gunicorn gthread 2 workers x 2 threads (persistent,
health-checked connections), and waitress with the hand-tuned settings of the original
report (threads=4, connection_limit=200, channel_timeout=3600). Each runs the reference
app on the same database, once on PostgreSQL and once on SQLite. For each concurrency
(``-c 1``, ``-c 8``) every server gets ``hey -z SLICE`` once per rotation, servers in
shuffled order per rotation, so the CPU's speed swings fall on all of them alike. hey
shares the 2 vCPUs with the servers, so req/s is a comparison, not a capacity.

Halfway through each ``-c 8`` slice the established connections on the server's port are
counted per process (``ss -tnp``, Linux): how hey's 8 keep-alive connections are split over
the worker processes, from the kernel's own table.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from serve_children import PATH
from serve_harness import Processes, Stack, concurrent, start_stack, stop_stack

__all__ = ["HeyResult", "Slice", "connections_per_process", "parse_hey", "phase_load", "tree_cpu_s"]

LOAD_SERVERS: tuple[tuple[str, str], ...] = (
    ("serve --workers 1", "serve-w1"),
    ("serve --workers 2", "serve-w2"),
    ("granian --workers 2", "granian-w2"),
    ("gunicorn gthread 2x2", "gunicorn"),
    ("waitress hand-tuned", "handtuned"),
)


@dataclass(frozen=True)
class HeyResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_hey(text: str) -> HeyResult:
    """The summary of ``hey``'s default text output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"50% in ([\d.]+) secs", text).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"99% in ([\d.]+) secs", text).group(1))  # type: ignore[union-attr]
    statuses = re.findall(r"\[(\d{3})\]\s+(\d+) responses", text)
    errors = sum(int(n) for code, n in statuses if code != "200")
    if "Error distribution" in text:
        errors += sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+Get", text, re.MULTILINE))
    return HeyResult(rps, p50 * 1000, p99 * 1000, errors)


def connections_per_process(port: int) -> list[int]:
    """Established connections on local ``port`` per owning process, largest first (empty
    without ``ss``)."""
    if shutil.which("ss") is None:
        return []
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    counts = collections.Counter(re.findall(r"pid=(\d+)", out))
    return sorted(counts.values(), reverse=True)


def tree_cpu_s(root_pid: int) -> float | None:
    """User + system CPU seconds of ``root_pid`` and its live descendants (Linux /proc;
    None elsewhere): a server's own work, whatever else the machine is doing."""
    if sys.platform == "linux":
        proc = Path("/proc")
        children: dict[int, list[int]] = {}
        ticks: dict[int, int] = {}
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
        total, todo = 0, [root_pid]
        while todo:
            pid = todo.pop()
            total += ticks.get(pid, 0)
            todo += children.get(pid, [])
        return total / os.sysconf("SC_CLK_TCK")
    else:
        return None


@dataclass(frozen=True)
class Slice:
    result: HeyResult
    split: list[int]
    cpu_ms_per_request: float | None


def run_hey(port: int, concurrency: int, slice_s: float, server_pid: int) -> Slice:
    """One hey slice; the connection split halfway through it; the server's CPU time per
    request over it."""
    argv = ["hey", "-z", f"{slice_s:g}s", "-c", str(concurrency), f"http://127.0.0.1:{port}{PATH}"]
    cpu_before = tree_cpu_s(server_pid)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as hey:
        time.sleep(slice_s / 2)  # a benchmark pacing its sampling, not a test waiting
        split = connections_per_process(port)
        out, err = hey.communicate(timeout=slice_s + 60)
    cpu_after = tree_cpu_s(server_pid)
    if hey.returncode != 0:
        raise RuntimeError(f"hey failed ({hey.returncode}): {err.strip()}")
    result = parse_hey(out)
    total = re.search(r"Total:\s+([\d.]+) secs", out)
    cpu_ms: float | None = None
    if cpu_before is not None and cpu_after is not None and total is not None:
        requests = result.rps * float(total.group(1))
        cpu_ms = (cpu_after - cpu_before) * 1000 / requests if requests else None
    return Slice(result, split, cpu_ms)


@dataclass
class _Runs:
    results: dict[int, list[HeyResult]] = field(default_factory=dict)
    splits: list[list[int]] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def phase_load(
    procs: Processes,
    pg_port: int,
    slice_s: float,
    rotations: int,
    out: list[str],
    databases: list[tuple[str, str | None]] | None = None,
) -> None:
    """One table per database: ``(label, URL)``, URL None for the cluster on ``pg_port``."""
    for label, url in databases or [("PostgreSQL", None)]:
        _load_one(procs, pg_port, url, label, slice_s, rotations, out)


def _load_one(
    procs: Processes,
    pg_port: int,
    db_url: str | None,
    db_label: str,
    slice_s: float,
    rotations: int,
    out: list[str],
) -> None:
    if shutil.which("hey") is None:
        out.append("### Load (hey)\n\n`hey` is not installed (apt install hey): skipped.\n")
        return
    servers = list(LOAD_SERVERS)
    notes: list[str] = []
    if not sys.platform.startswith("linux") or importlib.util.find_spec("gunicorn") is None:
        servers = [s for s in servers if s[1] != "gunicorn"]
        notes.append("gunicorn not available here (`uv sync --group bench`, Linux): skipped.")
    stacks: dict[str, Stack] = {}
    runs: dict[str, _Runs] = {}
    try:
        for label, kind in servers:
            try:
                stacks[label] = start_stack(procs, kind, kind, pg_port, None, None, db_url)
            except RuntimeError as exc:
                notes.append(f"{label}: did not start ({str(exc).splitlines()[0]})")
                continue
            runs[label] = _Runs()
        for stack in stacks.values():
            concurrent(stack.port, clients=8, per_client=3)  # every thread connected, warm
        rng = random.Random(13)
        for concurrency in (1, 8):
            for _ in range(rotations):
                names = list(stacks)
                rng.shuffle(names)
                for name in names:
                    stack = stacks[name]
                    one = run_hey(stack.port, concurrency, slice_s, stack.server.proc.pid)
                    result, split = one.result, one.split
                    runs[name].results.setdefault(concurrency, []).append(result)
                    if concurrency == 8:
                        runs[name].splits.append(split)
                        if one.cpu_ms_per_request is not None:
                            runs[name].cpu_ms.append(one.cpu_ms_per_request)
                    print(
                        f"  load {db_label} c={concurrency} {name}: {result.rps:.0f} req/s, "
                        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                        f"connections per process {'/'.join(map(str, split)) or '?'}, "
                        f"server CPU {one.cpu_ms_per_request or 0:.2f} ms/request",
                        file=sys.stderr,
                    )
    finally:
        for stack in stacks.values():
            stop_stack(procs, stack)
    base = "gunicorn gthread 2x2" if "gunicorn gthread 2x2" in runs else next(iter(runs))
    out.append(f"### Load on {db_label}: req/s and p50/p99 with hey, side by side\n")
    out.append(
        f"`hey -z {slice_s:g}s -c C` per server, {rotations} rotation(s) per concurrency in "
        "shuffled order; medians over rotations (c=8 req/s also as min-max). hey runs on "
        f"the same 2 vCPUs. Ratios are against {base}. Split: hey's connections per server "
        "process halfway through each c=8 slice (`ss -tnp`). CPU: the server's process tree "
        "(user + system, /proc) over each c=8 slice per request answered, median.\n"
    )
    out.append(
        "| server | c=1 req/s | c=1 p50 / p99 ms | c=8 req/s (min-max) | c=8 p50 / p99 ms | "
        "c=8 req/s vs base | c=8 p99 vs base | c=8 split | c=8 server CPU ms/request | "
        "non-200 |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")

    def med(name: str, c: int, what: str) -> float:
        return float(statistics.median(float(getattr(r, what)) for r in runs[name].results[c]))

    for name in runs:
        errors = sum(r.errors for rs in runs[name].results.values() for r in rs)
        c8 = [r.rps for r in runs[name].results[8]]
        cpu = f"{statistics.median(runs[name].cpu_ms):.2f}" if runs[name].cpu_ms else "?"
        splits = ", ".join("/".join(map(str, sp)) or "?" for sp in runs[name].splits)
        out.append(
            f"| {name} | {med(name, 1, 'rps'):.0f} | {med(name, 1, 'p50_ms'):.1f} / "
            f"{med(name, 1, 'p99_ms'):.1f} | {med(name, 8, 'rps'):.0f} "
            f"({min(c8):.0f}-{max(c8):.0f}) | "
            f"{med(name, 8, 'p50_ms'):.1f} / {med(name, 8, 'p99_ms'):.1f} | "
            f"{med(name, 8, 'rps') / med(base, 8, 'rps'):.2f}x | "
            f"{med(name, 8, 'p99_ms') / med(base, 8, 'p99_ms'):.2f}x | {splits} | {cpu} | "
            f"{errors} |"
        )
    for note in notes:
        out.append(f"\n{note}")
    out.append("")

"""Benchmark loading saved files: parse, validate and build the model, at 100 000 requests.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_load.py [--requests 100000] [--repeats 3]

Writes a synthetic probe run (``lagscope.probe/2``) and a diagnose report
(``lagscope.report/2``) of ``--requests`` requests each (every record with phases,
Server-Timing ``total`` and ``thread``, request and response headers; the records of
bench_report), and the same two in the first version of their format (``/1``, one object per
request, as files saved before the columns are), to a temporary directory. Then it loads
each in a fresh Python process, the way ``lagscope report`` and ``--load`` do
(:func:`lagscope.report.load.read_report`: read, parse, check, build the model), and
reports the load's wall time (median; its CPU time beside it, which a busy machine
disturbs less) and the process's peak memory (VmHWM, imports included) against a process
that reads the same file with ``json.loads`` alone, interleaved. The
targets: ≤ 1 s and ≤ 300 MB for 100 000 requests. Prints a Markdown section for
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_report import make_report
from lagscope import __version__
from lagscope.diagnose.model import SCHEMA as DIAGNOSE_SCHEMA
from lagscope.diagnose.model import DiagnoseReport, Environment
from lagscope.diagnose.model import to_dict as diagnose_to_dict
from lagscope.probe.model import to_dict as probe_to_dict
from lagscope.saved import saved_text
from support.saved_v1 import as_v1  # tests/support: files as the first format saved them

# Run in a child process: its peak RSS is the load's own, with the interpreter and imports.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
kind, path = sys.argv[1], Path(sys.argv[2])
if kind == "load":
    from lagscope.report.load import read_report
t0, c0 = time.perf_counter(), time.process_time()
if kind == "load":
    report = read_report(path)
    n = len(getattr(report, "requests", ())) or sum(len(s.requests) for s in report.series)
else:
    n = len(json.loads(path.read_text(encoding="utf-8")))
ms = (time.perf_counter() - t0) * 1000
cpu_ms = (time.process_time() - c0) * 1000
try:  # VmHWM is this process's own peak; ru_maxrss would include the parent's at fork
    with open("/proc/self/status") as status:
        mb = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
except OSError:
    mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(ms, cpu_ms, mb, n)
"""


def write_files(directory: Path, requests: int) -> dict[str, Path]:
    probe = make_report(0, requests - 1)
    probe_path = directory / "probe.json"
    probe_path.write_text(saved_text(probe_to_dict(probe)), encoding="utf-8")
    records = tuple(r for s in probe.series for r in s.requests)
    report = DiagnoseReport(
        schema=DIAGNOSE_SCHEMA,
        tool_version=__version__,
        url=probe.url,
        final_url=probe.url,
        command=("lagscope", "diagnose", probe.url),
        started_at=probe.started_at,
        duration_ms=1.0,
        environment=Environment("Linux", "3.11", (), False, "unknown", ()),
        rungs=(),
        findings=(),
        budgets=(),
        requests=records,
        truncated=False,
        warnings=(),
        options=(("quick", False),),
    )
    report_path = directory / "report.json"
    report_path.write_text(saved_text(diagnose_to_dict(report)), encoding="utf-8")
    files = {"lagscope.probe/2": probe_path, "lagscope.report/2": report_path}
    for kind, path in list(files.items()):  # the same runs as files saved before the columns
        old = directory / f"{path.stem}-1.json"
        old.write_text(saved_text(as_v1(json.loads(path.read_text("utf-8")))), encoding="utf-8")
        files[kind.replace("/2", "/1")] = old
    return files


def _child(kind: str, path: Path) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), int(out[3])


def _load_average() -> str:
    if sys.platform == "win32":
        return "n/a"
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("### loading saved files\n")
    print(
        "Command: `uv run --all-extras python bench/bench_load.py "
        f"--requests {args.requests} --repeats {args.repeats}`  "
    )
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"lagscope {__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {_load_average()} at the start\n"
    )
    print(
        "| file | size | json.loads ms (CPU) | load ms (CPU) | load ÷ json.loads "
        "| json.loads MB | load MB |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for schema, path in write_files(Path(tmp), args.requests).items():
            plain: list[tuple[float, float, float, int]] = []
            loads: list[tuple[float, float, float, int]] = []
            for _ in range(args.repeats):  # interleaved: the machine's speed drifts
                plain.append(_child("json", path))
                loads.append(_child("load", path))
            assert all(n == args.requests for *_, n in loads), loads
            json_ms, json_cpu = (statistics.median(p[i] for p in plain) for i in (0, 1))
            load_ms, load_cpu = (statistics.median(p[i] for p in loads) for i in (0, 1))
            print(
                f"| {schema}, {args.requests} requests | "
                f"{path.stat().st_size / 1e6:.0f} MB | {json_ms:.0f} ({json_cpu:.0f}) | "
                f"{load_ms:.0f} ({load_cpu:.0f}) | {load_ms / json_ms:.1f}× | "
                f"{max(p[2] for p in plain):.0f} | {max(p[2] for p in loads):.0f} |"
            )
    print(f"\nLoad average at the end: {_load_average()}.")


if __name__ == "__main__":
    main()

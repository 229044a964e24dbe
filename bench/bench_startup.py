"""Benchmark start-up as a user meets it: whole processes, wall time, side by side.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_startup.py [--rounds 9]

- ``lagscope --version`` against ``python -c pass`` (the interpreter's own floor).
  Target: under 150 ms.
- ``lagscope probe URL --cold 20 --warm 50`` against one ``curl`` invocation fetching the
  same URL 70 times, on a hello-world waitress app on loopback. The two run in turn, A B A B,
  and each pair gives a ratio, so the machine's drifting speed cancels out. Target: ≤ 4×.

Bytecode is compiled once (into a temporary PYTHONPYCACHEPREFIX) before the counted runs, as
an installed package has it; PYTHONDONTWRITEBYTECODE is cleared for the children.
Loopback only; every loop is bounded. Prints a Markdown section for docs/performance.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_probe import waitress_app
from lagscope import __version__

TIMEOUT_S = 60.0


def _children_cpu_s() -> float:
    # POSIX only (the resource module); the bench reports wall time alone elsewhere.
    if sys.platform == "win32":
        return math.nan
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        import resource

        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime


def _run_s(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole child process."""
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, timeout=TIMEOUT_S)
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({res.returncode}): {res.stderr[-300:]!r}")
    return elapsed, _children_cpu_s() - cpu_before


def _row(label: str, runs: list[tuple[float, float]]) -> str:
    wall = [w * 1000 for w, _ in runs]
    cpu = [c * 1000 for _, c in runs]
    return (
        f"| {label} | {statistics.median(wall):.0f} ({min(wall):.0f}–{max(wall):.0f}) |"
        f" {statistics.median(cpu):.0f} |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 50))
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is needed for the side-by-side run (apt-get install curl)")
    lagscope = str(Path(sys.executable).parent / "lagscope")
    with tempfile.TemporaryDirectory(prefix="lagscope-bench-pyc-") as pyc:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pyc
        env["NO_COLOR"] = "1"
        with waitress_app() as port:
            url = f"http://127.0.0.1:{port}/"
            probe = [lagscope, "probe", url, "--cold", "20", "--warm", "50"]
            curl_cmd = [curl, "-s", *[a for _ in range(70) for a in ("-o", os.devnull, url)]]
            version = [lagscope, "--version"]
            floor = [sys.executable, "-c", "pass"]
            for cmd in (probe, curl_cmd, version, floor):  # warm-up; compiles bytecode
                _run_s(cmd, env)
            runs: dict[str, list[tuple[float, float]]] = {
                "probe": [],
                "curl": [],
                "version": [],
                "floor": [],
            }
            for _ in range(rounds):  # A B A B: each probe run is paired with the next curl
                runs["probe"].append(_run_s(probe, env))
                runs["curl"].append(_run_s(curl_cmd, env))
                runs["version"].append(_run_s(version, env))
                runs["floor"].append(_run_s(floor, env))
    print(f"Command: `uv run --all-extras python bench/bench_startup.py --rounds {rounds}`  ")
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, lagscope {__version__}, {time.strftime('%Y-%m-%d')}"
    )
    print()
    print("| whole process | wall ms, median (min–max) | CPU ms, median |")
    print("|---|---|---|")
    labels = {
        "floor": "`python -c pass`",
        "version": "`lagscope --version` (target < 150 ms)",
        "probe": "`lagscope probe URL --cold 20 --warm 50`",
        "curl": "`curl` with the same URL 70 times, one invocation",
    }
    for key in ("floor", "version", "probe", "curl"):
        print(_row(labels[key], runs[key]))
    print()
    for i, what in ((0, "wall"), (1, "CPU")):
        ratios = [a[i] / b[i] for a, b in zip(runs["probe"], runs["curl"], strict=True) if b[i]]
        if ratios:
            print(
                f"probe / curl {what}, paired A B A B: median {statistics.median(ratios):.1f}×"
                f" (min {min(ratios):.1f}×, max {max(ratios):.1f}×; target ≤ 4×)  "
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Benchmark start-up as a user meets it: whole processes, wall time, side by side.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_startup.py [--rounds 9]

- ``lagscope --version`` against ``python -c pass`` (the interpreter's own floor).
  Target: under 150 ms.
- ``lagscope probe URL --cold 20 --warm 50`` against one ``curl`` invocation making the same
  70 requests: 20 on fresh connections (``Connection: close``, so each needs a new one) and,
  after ``--next``, 50 on one keep-alive connection, on a hello-world waitress app on
  loopback. The two run in turn, A B A B, and each pair gives a ratio, so the machine's
  drifting speed cancels out. Target: ≤ 4×.
- ``lagscope probe --help`` and ``lagscope diagnose --help`` against ``python -c "import
  click"`` (what any click program pays), paired the same way. Target: ≤ 1.5× each.
- ``python -S -c pass`` next to ``python -c pass``: what ``site`` (the venv's
  site-packages, ``.pth`` files) adds to every console script.
- ``--baseline PATH`` runs another lagscope console script (an older commit's venv, made with
  ``git worktree add`` and ``uv sync``) in the same rounds, for before / after ratios.

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


def _fetches(url: str, n: int) -> list[str]:
    return [a for _ in range(n) for a in ("-o", os.devnull, url)]


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
    parser.add_argument(
        "--baseline",
        metavar="LAGSCOPE",
        help="another lagscope console script (e.g. an older commit's venv) to run in the same "
        "rounds: its probe and --version rows and the paired after / before ratios",
    )
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
            # curl reuses a connection whenever it can; "Connection: close" makes the server
            # close each of the first 20, so each of them opens a fresh one, as --cold does.
            curl_cmd = [
                curl,
                "-s",
                "-H",
                "Connection: close",
                *_fetches(url, 20),
                "--next",
                "-s",
                *_fetches(url, 50),
            ]
            commands = {
                "probe": probe,
                "curl": curl_cmd,
                "version": [lagscope, "--version"],
                "floor": [sys.executable, "-c", "pass"],
                "floor_s": [sys.executable, "-S", "-c", "pass"],
                "click": [sys.executable, "-c", "import click"],
                "probe_help": [lagscope, "probe", "--help"],
                "diagnose_help": [lagscope, "diagnose", "--help"],
            }
            if args.baseline:
                commands["base_probe"] = [args.baseline, *probe[1:]]
                commands["base_version"] = [args.baseline, "--version"]
            for cmd in commands.values():  # warm-up; compiles bytecode
                _run_s(cmd, env)
            runs: dict[str, list[tuple[float, float]]] = {key: [] for key in commands}
            for _ in range(rounds):  # A B A B: each probe run is paired with the next curl
                for key, cmd in commands.items():
                    runs[key].append(_run_s(cmd, env))
    baseline = f" --baseline {args.baseline}" if args.baseline else ""
    print(
        f"Command: `uv run --all-extras python bench/bench_startup.py --rounds {rounds}"
        f"{baseline}`  "
    )
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, lagscope {__version__}, {time.strftime('%Y-%m-%d')}"
    )
    print()
    print("| whole process | wall ms, median (min–max) | CPU ms, median |")
    print("|---|---|---|")
    labels = {
        "floor": "`python -c pass`",
        "floor_s": "`python -S -c pass` (no site)",
        "version": "`lagscope --version` (target < 150 ms)",
        "probe": "`lagscope probe URL --cold 20 --warm 50`",
        "curl": "one `curl`: 20 requests on fresh connections + 50 on one keep-alive",
        "click": '`python -c "import click"`',
        "probe_help": "`lagscope probe --help`",
        "diagnose_help": "`lagscope diagnose --help`",
    }
    if args.baseline:
        labels["base_version"] = "baseline `lagscope --version`"
        labels["base_probe"] = "baseline `lagscope probe URL --cold 20 --warm 50`"
    for key in labels:
        print(_row(labels[key], runs[key]))
    print()
    for i, what in ((0, "wall"), (1, "CPU")):
        ratios = [a[i] / b[i] for a, b in zip(runs["probe"], runs["curl"], strict=True) if b[i]]
        if ratios:
            target = "; target ≤ 4×" if what == "wall" else ""
            print(
                f"probe / curl {what}, paired A B A B: median {statistics.median(ratios):.1f}×"
                f" (min {min(ratios):.1f}×, max {max(ratios):.1f}×{target})  "
            )
    for key in ("probe_help", "diagnose_help"):
        for i, what in ((0, "wall"), (1, "CPU")):
            ratios = [a[i] / b[i] for a, b in zip(runs[key], runs["click"], strict=True) if b[i]]
            if ratios:
                print(
                    f"{labels[key]} / `import click` {what}, paired: median"
                    f" {statistics.median(ratios):.2f}× (min {min(ratios):.2f}×,"
                    f" max {max(ratios):.2f}×; target ≤ 1.5×)  "
                )
    if args.baseline:
        print()
        for after, before in (("probe", "base_probe"), ("version", "base_version")):
            for i, what in ((0, "wall"), (1, "CPU")):
                ratios = [a[i] / b[i] for a, b in zip(runs[after], runs[before], strict=True)]
                print(
                    f"{after} / baseline {what}, paired: median {statistics.median(ratios):.2f}×"
                    f" (min {min(ratios):.2f}×, max {max(ratios):.2f}×)  "
                )
        for i, what in ((0, "wall"),):
            ratios = [a[i] / b[i] for a, b in zip(runs["base_probe"], runs["curl"], strict=True)]
            print(
                f"baseline probe / curl {what}, paired: median {statistics.median(ratios):.1f}×"
                f" (min {min(ratios):.1f}×, max {max(ratios):.1f}×)  "
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

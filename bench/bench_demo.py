"""Benchmark ``lagscope demo``'s wall time, default and ``--quick``, side by side.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_demo.py [--rounds 3] [--database sqlite]

Each round runs ``python -m lagscope demo --json`` and ``... --quick --json`` one after the
other (interleaved, since this VM's CPU speed changes every few seconds), and reads the
whole process's wall time with the report's own ``wall_s`` (the demo without interpreter
start-up). Targets: ≤ 60 s default, ≤ 20 s ``--quick``. Prints a Markdown section for
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time


def _once(extra: list[str]) -> tuple[float, float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lagscope", "demo", "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    wall_s = time.perf_counter() - start
    report = json.loads(proc.stdout)
    return wall_s, float(report["wall_s"]), str(report["database"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None, help="pass --database to the demo")
    parser.add_argument(
        "--edit-cost",
        action="store_true",
        help="also run each mode with --no-edit (what the first-page-after-an-edit row adds)",
    )
    args = parser.parse_args()
    base = ["--database", args.database] if args.database else []
    modes = {"default": base, "--quick": [*base, "--quick"]}
    if args.edit_cost:
        modes["default --no-edit"] = [*base, "--no-edit"]
        modes["--quick --no-edit"] = [*base, "--quick", "--no-edit"]
    walls: dict[str, list[float]] = {m: [] for m in modes}
    inner: dict[str, list[float]] = {m: [] for m in modes}
    database = "?"
    for _ in range(args.rounds):
        for mode, extra in modes.items():
            wall, reported, database = _once(extra)
            walls[mode].append(wall)
            inner[mode].append(reported)
            print(f"{mode}: {wall:.1f} s (report {reported:.1f} s)", file=sys.stderr)
    print("## demo: wall time\n")
    print(f"Command: `uv run --all-extras python bench/bench_demo.py --rounds {args.rounds}`  ")
    print(
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"database {database}, {time.strftime('%Y-%m-%d')}\n"
    )
    print("| mode | process wall s, median (min–max) | report wall_s median | target |")
    print("|---|---|---|---|")
    targets = {"default": "≤ 60 s", "--quick": "≤ 20 s"}
    for mode in modes:
        targets.setdefault(mode, "")
        w = walls[mode]
        print(
            f"| {mode} | {statistics.median(w):.1f} ({min(w):.1f}–{max(w):.1f}) | "
            f"{statistics.median(inner[mode]):.1f} | {targets[mode]} |"
        )
    ratio = statistics.median(walls["--quick"]) / statistics.median(walls["default"])
    print(f"\n--quick / default: {ratio:.2f}×")
    for mode in ("default", "--quick"):
        if f"{mode} --no-edit" in walls:
            added = statistics.median(walls[mode]) - statistics.median(walls[f"{mode} --no-edit"])
            print(f"{mode}: the edit row adds {added:+.1f} s")


if __name__ == "__main__":
    main()

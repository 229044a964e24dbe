"""Benchmark the ``browser`` rung of ``lagscope diagnose``: its wall time, and its cold load
against Chromium's own measure of the same page.

Run on demand (never in CI), loopback only; about three minutes on 2 vCPUs::

    uv run --all-extras python bench/bench_browser.py [--reps 3]

It prints a Markdown section for docs/performance.md ("## diagnose --browser").

The page: tests/support/staticsite.py's ten assets (3 CSS, 3 JS, 4 images) on waitress,
behind tests/support/taxproxy.py's independent hold on each new connection's first bytes
(300 ms, and 0 ms as the control), in a child process of its own. Per round, interleaved:

1. ``python -m lagscope diagnose URL --browser -o FILE`` (a whole process, the default
   ladder): the run's wall time and the rung's own ``duration_ms`` from the saved report;
2. the same without ``--browser``: what the rung adds to the whole run;
3. the page loaded by Chromium over its DevTools pipe (tests/support/chromium.py, a fresh
   profile; not through lagscope or Playwright): ``loadEventEnd``, against the rung's
   ``cold_load_ms``. The tab first loads the same server on its untaxed port, so its
   renderer is running when the page is timed, as Playwright's page has one (a fresh tab's
   first navigation otherwise pays the renderer's start, ~300 ms here); no connection is
   shared between the two ports.

Target: the rung's wall time inside diagnose's default budget (10 s); the rung's cold load
within 15 % of Chromium's.
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

from support.chromium import open_page
from support.taxproxy import taxed_site


def _diagnose(url: str, out: Path, browser: bool) -> tuple[float, dict[str, object]]:
    args = [sys.executable, "-m", "lagscope", "diagnose", url, "-o", str(out)]
    if browser:
        args.append("--browser")
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"diagnose failed ({done.returncode}): {done.stderr.strip()}")
    report: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    return wall, report


def _chromium_load_ms(url: str, first: str) -> float:
    # ``first``: the same server without the tax (another port), so the tab's renderer
    # runs before the timed load, as Playwright's page does; no connection is shared.
    with open_page(url, first=first) as page:
        return float(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))


def _rung(report: dict[str, object]) -> dict[str, object]:
    rungs = report["rungs"]
    assert isinstance(rungs, list)
    rung = next(r for r in rungs if r["name"] == "browser")
    assert isinstance(rung, dict)
    return rung


def _figure(rung: dict[str, object], name: str) -> float:
    figures = rung["figures"]
    assert isinstance(figures, list)
    return float(next(f["value"] for f in figures if f["name"] == name))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rows: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        out = Path(tmp) / "d.json"
        for tax_s in (0.3, 0.0):
            with taxed_site(tax_s) as site:
                url = f"http://127.0.0.1:{site.port}/"
                walls: list[float] = []
                plain: list[float] = []
                rung_s: list[float] = []
                ours: list[float] = []
                chromium: list[float] = []
                conns: list[float] = []
                added: list[float] = []
                for _ in range(args.reps):
                    wall, report = _diagnose(url, out, browser=True)
                    rung = _rung(report)
                    walls.append(wall)
                    rung_duration = rung["duration_ms"]
                    assert isinstance(rung_duration, (int, float))
                    rung_s.append(float(rung_duration) / 1000)
                    ours.append(_figure(rung, "cold_load_ms"))
                    conns.append(_figure(rung, "cold_connections_opened"))
                    added.append(_figure(rung, "cold_setup_added_ms"))
                    plain.append(_diagnose(url, out, browser=False)[0])
                    chromium.append(_chromium_load_ms(url, f"http://127.0.0.1:{site.direct_port}/"))
                med = statistics.median
                rows.append(
                    f"| {tax_s * 1000:.0f} ms | {med(walls):.1f} s ({min(walls):.1f}-"
                    f"{max(walls):.1f}) | {med(plain):.1f} s | {med(rung_s):.1f} s "
                    f"({min(rung_s):.1f}-{max(rung_s):.1f}) | {med(ours):.0f} ms | "
                    f"{med(chromium):.0f} ms | {med(ours) / med(chromium):.2f}x | "
                    f"{med(conns):.0f} | {med(added):.0f} ms |"
                )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("## diagnose --browser\n")
    print(
        f"Command: `uv run --all-extras python bench/bench_browser.py --reps {args.reps}` "
        f"({time.perf_counter() - started:.0f} s in all). Machine: {_cpu()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.1f} "
        "at the end. Page: ten assets on waitress behind an independent hold on each new "
        "connection (tests/support/taxproxy.py). Medians of the rounds (range).\n"
    )
    print(
        "| tax | diagnose --browser | diagnose | browser rung | rung cold load | "
        "Chromium's own | ratio | connections | setup added |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()

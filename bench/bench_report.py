"""Benchmark the report renderers (HTML and HAR) at the default and the largest run size.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_report.py [--repeats 5]

Synthetic probe reports (every record with phases, Server-Timing ``total`` and ``thread``,
request and response headers) of the default size (20 cold + 50 warm) and of the largest the
probe allows (1000 cold + 10 000 warm), rendered by ``report.html.render`` and
``report.har.render``. Reports the median time and the output size; the HTML target is
≤ 1 MB for a default run. Pure computation: no network, no files. Prints a Markdown section
for docs/performance.md.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

from lagscope import __version__
from lagscope.instrument.servertiming import Metric
from lagscope.probe.model import KeepAlive, ProbeReport, RequestRecord
from lagscope.probe.report import RunFacts, build_report
from lagscope.report import har, html

_HEADERS = (("content-type", "application/json"), ("content-length", "94211"))


def _record(i: int, series: str, conn: int, reused: bool, rng: random.Random) -> RequestRecord:
    wait = rng.lognormvariate(2.6, 0.2) + (0.0 if reused else 100.0)
    opening = 0.0 if reused else 0.45
    return RequestRecord(
        series=series,
        index=i,
        connection=conn,
        reused=reused,
        status=200,
        http_version="1.1",
        start_ms=i * 15.0,
        resolve_ms=None if reused else 0.02,
        connect_ms=None if reused else 0.43,
        tls_ms=None,
        send_ms=0.03,
        wait_ms=wait,
        receive_ms=0.4,
        total_ms=opening + 0.03 + wait + 0.4,
        body_bytes=94211,
        keep_alive=True,
        server_timing=(
            Metric("total", wait - 0.5, None),
            Metric("thread", None, f"waitress-{i % 4}"),
        ),
        server_address="127.0.0.1",
        head_ms=0.05,
        response_headers=_HEADERS,
        request_headers=(("Host", "127.0.0.1:8000"), ("User-Agent", "lagscope/0")),
    )


def make_report(cold: int, warm: int) -> ProbeReport:
    rng = random.Random(7)
    records = [_record(i, "cold", i, False, rng) for i in range(cold)]
    records.append(_record(cold, "warm_first", cold, False, rng))
    records += [_record(cold + 1 + i, "warm", cold, True, rng) for i in range(warm)]
    facts = RunFacts(
        tool_version=__version__,
        url="http://127.0.0.1:8000/api/items/",
        method="GET",
        started_at="2026-11-30T00:00:00+00:00",
        duration_ms=1.0,
        host="127.0.0.1",
        resolve_source="dns",
        addresses=("127.0.0.1",),
        keep_alive=KeepAlive(supported=True, reason=None, reconnects=0),
        truncated=False,
        warnings=(),
        options=(("cold", cold), ("warm", warm)),
    )
    return build_report(records, facts)


def _time(fn: Callable[[], str], repeats: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
        size = len(out.encode("utf-8"))
    return statistics.median(times), min(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("### report renderers (HTML and HAR)\n")
    print(f"Command: `uv run --all-extras python bench/bench_report.py --repeats {args.repeats}`  ")
    print(
        f"Machine: {platform.platform()}, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print("| run | renderer | median ms | min ms | output |")
    print("|---|---|---|---|---|")
    for cold, warm in ((20, 50), (1000, 10000)):
        report = make_report(cold, warm)
        html.render(report)  # templates compiled once, outside the timing
        for name, fn in (("html", html.render), ("har", har.render)):
            median, low, size = _time(partial(fn, report), args.repeats)
            print(
                f"| {cold} cold + {warm} warm | {name} | {median:.1f} | {low:.1f} | "
                f"{size / 1024:.0f} KiB |"
            )


if __name__ == "__main__":
    main()

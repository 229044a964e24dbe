"""Benchmark the probe's statistics at the sizes the probe allows (up to --warm 10000).

Run on demand (never in CI):

    uv run --all-extras python bench/bench_stats.py [--repeats 7]

- ``summarize`` of n samples (sort, percentiles, mean, the median's confidence interval),
  with the rank cache cleared before every call, so each figure is a first call. Target:
  10 000 samples in ≤ 50 ms.
- ``summarize_series`` of n synthetic warm records: the whole per-series statistics the
  report builds (every phase, the Server-Timing metrics, the time outside the app).
- The median interval against the earlier code (each candidate rank's binomial tail summed
  from scratch), side by side at sizes where that code still finishes.

Pure computation: no network, no files. Prints a Markdown section for docs/performance.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

from lagscope import __version__
from lagscope.instrument.servertiming import Metric
from lagscope.probe import stats
from lagscope.probe.model import RequestRecord
from lagscope.probe.report import summarize_series


def _median_ci_by_repeated_sums(
    sorted_values: Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """The earlier median interval, for the side-by-side rows."""

    def cdf(k: int, n: int) -> float:
        if k < 0:
            return 0.0
        if k >= n:
            return 1.0
        total: int = sum(math.comb(n, i) for i in range(k + 1))
        return total / (1 << n)

    n = len(sorted_values)
    alpha_half = (1.0 - level) / 2.0
    j = 1
    while j + 1 <= (n + 1) // 2 and cdf(j, n) <= alpha_half:
        j += 1
    return float(sorted_values[j - 1]), float(sorted_values[n - j]), 1.0 - 2.0 * cdf(j - 1, n)


def _samples(n: int, rng: random.Random) -> list[float]:
    # Latency-shaped: a log-normal body around 2 ms with a slow tail.
    return [rng.lognormvariate(math.log(2.0), 0.4) for _ in range(n)]


def _records(n: int, rng: random.Random) -> list[RequestRecord]:
    out = []
    for i in range(n):
        send, wait, receive = rng.uniform(0.01, 0.05), rng.lognormvariate(0.7, 0.4), 0.05
        app = wait * 0.8
        out.append(
            RequestRecord(
                series="warm",
                index=i,
                connection=0,
                reused=True,
                status=200,
                http_version="1.1",
                start_ms=float(i),
                resolve_ms=None,
                connect_ms=None,
                tls_ms=None,
                send_ms=send,
                wait_ms=wait,
                receive_ms=receive,
                total_ms=send + wait + receive,
                body_bytes=2,
                keep_alive=True,
                server_timing=(
                    Metric("total", app, None),
                    Metric("view", app * 0.9, None),
                    Metric("db", app * 0.3, "2 queries"),
                ),
            )
        )
    return out


def _time_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        stats._median_ranks.cache_clear()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(label: str, times: Sequence[float]) -> str:
    return f"| {label} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} |"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    repeats = max(1, min(args.repeats, 50))
    rng = random.Random(7)
    print(f"Command: `uv run --all-extras python bench/bench_stats.py --repeats {repeats}`  ")
    print(
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"lagscope {__version__}, {time.strftime('%Y-%m-%d')}"
    )
    print()
    print("| computation | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for n in (100, 1_000, 10_000):
        xs = _samples(n, rng)
        print(_row(f"`summarize`, n = {n}", _time_ms(partial(stats.summarize, xs), repeats)))
    for n in (1_000, 10_000):
        recs = _records(n, rng)
        print(
            _row(
                f"`summarize_series`, {n} warm records",
                _time_ms(partial(summarize_series, "warm", recs), repeats),
            )
        )
    print()
    print("| median interval, side by side | earlier code ms | running sum ms | ratio |")
    print("|---|---|---|---|")
    for n in (100, 300, 1_000):
        xs = sorted(_samples(n, rng))
        old_ms, new_ms = [], []
        for _ in range(max(1, repeats // 2) if n >= 1_000 else repeats):  # A B A B
            old_ms += _time_ms(partial(_median_ci_by_repeated_sums, xs), 1)
            new_ms += _time_ms(partial(stats.median_ci, xs), 1)
            assert _median_ci_by_repeated_sums(xs) == stats.median_ci(xs)
        old, new = statistics.median(old_ms), statistics.median(new_ms)
        print(f"| n = {n} | {old:.2f} | {new:.3f} | {old / new:.0f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What the query hook costs per query while a request is instrumented, with and without
the statement shape (``dbshapes``), against calling the driver's execute directly.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_query_hook.py [--rounds 21] [--batch 20000]

No database: ``execute`` is a no-op function, so the figures are the hook's own Python cost
(a real PostgreSQL round trip is ~90 µs here, baseline.md). Three ways, interleaved per
round, medians of per-round paired differences:

* direct: ``execute(sql, params, many, context)``;
* hook without shape: the hook's timing and counting with ``statement_shape`` left out;
* hook (shipped): ``lagscope.django.db._observe_query``, shape included.

Each way runs a mix of 20 distinct ORM-like statements, so the shape cache is warm as it is
in a running app (every statement text after its first execution).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--batch", type=int, default=20000)
    args = parser.parse_args()
    settings.configure(INSTALLED_APPS=["lagscope.django"], DATABASES={})
    django.setup()
    from lagscope.django import db
    from lagscope.instrument.record import RequestTiming

    statements = [
        f'SELECT "t{i}"."id", "t{i}"."name" FROM "t{i}" WHERE "t{i}"."id" IN (%s, %s, %s)'
        for i in range(20)
    ]
    context: dict[str, Any] = {}

    def execute(sql: str, params: Any, many: bool, ctx: dict[str, Any]) -> None:
        return None

    def without_shape(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: dict[str, Any]
    ) -> Any:
        # The shipped hook with the shape left out: the figure it is compared with.
        timing = db.current.get()
        if timing is None:
            return execute(sql, params, many, ctx)
        start_s = db.clock()
        try:
            return execute(sql, params, many, ctx)
        finally:
            end_s = db.clock()
            timing.add_query(end_s - start_s, end_s)

    def run_direct(batch: int) -> float:
        start = time.perf_counter()
        for i in range(batch):
            execute(statements[i % 20], (1, 2, 3), False, context)
        return (time.perf_counter() - start) / batch

    def hooked(hook: Callable[..., Any]) -> Callable[[int], float]:
        def run(batch: int) -> float:
            token = db.current.set(RequestTiming(0.0))
            try:
                start = time.perf_counter()
                for i in range(batch):
                    hook(execute, statements[i % 20], (1, 2, 3), False, context)
                return (time.perf_counter() - start) / batch
            finally:
                db.current.reset(token)

        return run

    ways = {
        "direct": run_direct,
        "hook without shape": hooked(without_shape),
        "hook (shipped, with shape)": hooked(db._observe_query),
    }
    names = list(ways)
    for run in ways.values():
        run(2000)
    per: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % 3 :] + names[: r % 3]:
            per[n].append(ways[n](args.batch) * 1e6)
    print(
        f"# {platform.platform()}, Python {platform.python_version()}; "
        f"rounds={args.rounds} batch={args.batch}"
    )
    print("| way | µs/query (median) | over direct, µs (median paired) |")
    print("|---|---|---|")
    for n in names:
        diffs = [a - b for a, b in zip(per[n], per["direct"], strict=True)]
        print(f"| {n} | {statistics.median(per[n]):.3f} | {statistics.median(diffs):+.3f} |")
    shape = [a - b for a, b in zip(per[names[2]], per[names[1]], strict=True)]
    added = statistics.median(shape)
    print(f"\nthe statement shape adds {added:+.3f} µs per query (median paired)")


if __name__ == "__main__":
    main()

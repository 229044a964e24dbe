"""Waiting for a worker: ``server-queueing`` over the concurrency ladder. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    metric_desc,
    metric_ms,
    outside_app_ms,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    has_timing,
    make_finding,
    median,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["server_queueing"]


def server_queueing(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    levels = sorted(ev.queue, key=lambda lv: lv.clients)
    if len(levels) < 2 or levels[0].clients != 1:
        return None
    timed = all(has_timing(lv.records) for lv in levels)

    def outside(lv_records: Sequence[RequestRecord]) -> float:
        if timed:
            queue = [metric_ms(r, "queue") for r in lv_records]
            if all(q is not None for q in queue):
                return median([q or 0.0 for q in queue]) + median(
                    [
                        (outside_app_ms(r) or 0.0) - (metric_ms(r, "queue") or 0.0)
                        for r in lv_records
                    ]
                )
            return median([outside_app_ms(r) or 0.0 for r in lv_records])
        return median([r.wait_ms for r in lv_records])

    def app(lv_records: Sequence[RequestRecord]) -> float:
        return median([r.app_ms() or 0.0 for r in lv_records]) if timed else 0.0

    base_out, base_app = outside(levels[0].records), app(levels[0].records)
    # Waiting is judged against the time already spent outside the app with one client:
    # 40 ms more is a queue when that time was 1 ms, and noise when it was a 200 ms tax.
    floor = max(t.queue_ms, t.queue_base_share * base_out)
    figures = [
        Figure(
            f"clients_{lv.clients}_outside_app_ms" if timed else f"clients_{lv.clients}_wait_ms",
            round(outside(lv.records), 3),
        )
        for lv in levels
    ]
    if timed:
        figures += [
            Figure(f"clients_{lv.clients}_app_ms", round(app(lv.records), 3)) for lv in levels
        ]
    # One client's service time: what a request ahead in a worker's queue costs.
    service = base_app if timed else base_out
    # The workers the app named (Server-Timing ``thread``), over every request of the run:
    # with W of them, N clients that arrive together wait at most ceil(N / W) - 1 service
    # times. Unnamed: one worker, the most waiting a worker shortage can explain.
    early = ev.warmup.sequence + ev.warmup.burst if ev.warmup is not None else ()
    named = {metric_desc(r, "thread") for lv in levels for r in lv.records}
    named |= {metric_desc(r, "thread") for r in early}
    workers = max(1, len(named - {None, ""}))
    for lv in levels[1:]:
        if lv.clients > t.queue_max_clients or not lv.records:
            continue
        waited = outside(lv.records) - base_out
        grew = app(lv.records) - base_app
        # Waiting for a worker cannot exceed the service time of every client queued ahead
        # on the same worker; more than that is this machine's CPU starved (other
        # processes, the GIL), not a worker shortage.
        ceiling = t.queue_ceiling * (math.ceil(lv.clients / workers) - 1) * service
        if floor <= waited <= ceiling and grew < t.queue_growth_share * waited:
            return make_finding(
                ev,
                t,
                "server-queueing",
                f"With {lv.clients} concurrent clients, requests wait for a worker",
                waited,
                "concurrent requests",
                figures,
                [
                    "More worker threads when the app waits on I/O (`lagscope serve --threads N`; "
                    "waitress threads=N), or more processes when it is CPU-bound "
                    "(`lagscope serve --workers N`).",
                    "Find what holds a worker: a slow query, an external call, a lock.",
                ],
                f"At {lv.clients} concurrent clients each request waited {waited:.0f} ms "
                "before the app started on it"
                + (", while the app's own time did not grow." if timed else "."),
            )
    return None

"""The concurrency ladder: 1, 2, 4, 8 clients at once, each on its own kept-alive
connection after one unrecorded request, so a wait that grows with the clients is a queue
for a worker (only on loopback, or with --allow-load)."""

from __future__ import annotations

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import QueueLevel, figure, outside_app_ms, summary_of
from lagscope.diagnose.model import Figure
from lagscope.diagnose.traffic import concurrent

__all__ = ["queue"]


def queue(run: LadderRun) -> tuple[QueueLevel, ...]:
    t0 = run.start("queueing")
    plan = run.plan
    levels: list[QueueLevel] = []
    for clients in plan.queue_levels:
        if run.left_s() <= 0:
            run.truncated = True
            break
        records = concurrent(
            run, clients, plan.queue_requests, f"c{clients}", 1, budget_s=plan.queue_level_s
        )
        levels.append(QueueLevel(clients, tuple(records)))
    figures: list[Figure] = []
    for lv in levels:
        figures.append(
            figure(f"clients_{lv.clients}_wait_ms", summary_of(r.wait_ms for r in lv.records))
        )
        out = summary_of(outside_app_ms(r) for r in lv.records)
        if out is not None:
            figures.append(figure(f"clients_{lv.clients}_outside_app_ms", out))
            figures.append(
                figure(f"clients_{lv.clients}_app_ms", summary_of(r.app_ms() for r in lv.records))
            )
    run.done("queueing", "Concurrency ladder", t0, figures)
    return tuple(levels)

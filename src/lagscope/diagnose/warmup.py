"""The warm-up rung: the run's first requests in order, then a concurrent burst.

A freshly started server answers these first, so they are kept (never thrown away as
warm-up) and are how per-worker warm-up is seen: one slow request per worker thread that
opens its database connection or imports on first use.
"""

from __future__ import annotations

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import Warmup, figure, metric_desc, summary_of
from lagscope.diagnose.first_request import REDIRECTS
from lagscope.diagnose.model import Figure
from lagscope.diagnose.traffic import concurrent, in_order
from lagscope.probe.model import RequestRecord
from lagscope.probe.options import REMOTE_RATE_PER_S

__all__ = ["warmup"]


def warmup(run: LadderRun, first: RequestRecord) -> Warmup:
    t0 = run.start("warm-up")
    plan = run.plan
    sequence: list[RequestRecord] = [first] if first.status not in REDIRECTS else []
    interval_s = 0.0 if run.loopback else 1.0 / REMOTE_RATE_PER_S
    sequence += in_order(run, run.client(), plan.sequence, "warmup", "warm-up", interval_s)
    burst: list[RequestRecord] = []
    refused = run.load_refused()
    if refused is None:
        burst = concurrent(run, plan.burst_clients, plan.burst_requests, "burst", unrecorded=0)
    else:
        run.warnings.append(f"no concurrent burst: {refused}")
    threads = {metric_desc(r, "thread") for r in sequence + burst} - {None}
    figures = [
        Figure("sequence_totals_ms", ", ".join(f"{r.total_ms:.1f}" for r in sequence)),
        Figure("burst_requests", len(burst)),
        Figure("threads_seen", len(threads) or None),
        figure("burst_total_ms", summary_of(r.total_ms for r in burst)),
    ]
    run.done("warm-up", "Per-worker warm-up (the run's first requests)", t0, figures)
    return Warmup(tuple(sequence), tuple(burst))

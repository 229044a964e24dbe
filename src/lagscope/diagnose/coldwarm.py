"""The cold-vs-warm rungs: new connections against one kept-alive connection (through the
probe's own plan, :func:`lagscope.probe.runner.run_probe`), to the URL and, with
``--direct``, straight to the app; then requests back to back on a kept-alive connection.

The counts fit each rung's time budget at the speed seen so far, never below what a 95 %
median interval needs: a slow stack takes longer, not less evidence.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import (
    ColdWarm,
    figure,
    metric_desc,
    metric_ms,
    outside_app_ms,
    summary_of,
)
from lagscope.diagnose.model import Figure
from lagscope.diagnose.options import MIN_SAMPLES
from lagscope.diagnose.traffic import in_order
from lagscope.probe.model import ProbeReport, RequestRecord
from lagscope.probe.options import ProbeOptions
from lagscope.probe.runner import RunDeadline, run_probe

__all__ = ["back_to_back", "coldwarm"]

MAIN = "cold vs warm"
# The least a request is taken to cost when fitting counts to a budget (a hello-world on
# loopback is ~0.3 ms): keeps the count finite.
_FLOOR_REQUEST_MS = 0.05


def coldwarm(
    run: LadderRun,
    probe: ProbeOptions,
    name: str,
    title: str,
    cold: int,
    warm: int,
    budget_s: float,
) -> ColdWarm:
    t0 = run.start(name)
    left = run.left_s()
    if left <= 0:
        raise RunDeadline(name)
    cold, warm = _fit(run, cold, warm, budget_s)
    opts = replace(probe, cold=cold, warm=warm, max_time_s=max(0.001, left))
    report = run_probe(opts, run.network, run.clock)
    if report.keep_alive.supported:
        # Its warm connection found closed and retried: counted, not itemised.
        run.silent_closes += [(-1, 0.0)] * report.keep_alive.reconnects
    prefix = "" if name == MAIN else "direct-"
    records = [r for s in report.series for r in s.requests]
    records.sort(key=lambda r: r.start_ms)
    offset = (t0 - run.run_start) / 1e6
    mine = run.keep(
        [replace(r, start_ms=r.start_ms + offset, series=prefix + r.series) for r in records]
    )
    cw = ColdWarm(
        cold=tuple(r for r in mine if r.series == prefix + "cold"),
        warm=tuple(r for r in mine if r.series == prefix + "warm"),
        warm_first=tuple(r for r in mine if r.series == prefix + "warm_first"),
        keep_alive=report.keep_alive.supported,
        keep_alive_reason=report.keep_alive.reason,
    )
    if report.truncated:
        run.warnings.append(f"{name}: its time budget ran out before all requests were made")
    run.done(name, title, t0, _figures(cw, report))
    return cw


def _fit(run: LadderRun, cold: int, warm: int, budget_s: float) -> tuple[int, int]:
    """Counts that fit the rung's time budget at the speed seen so far, never below what
    a 95 % median interval needs: a slow stack takes longer, not less evidence."""
    new = [r.total_ms for r in run.records if not r.reused]
    reused = [r.total_ms for r in run.records if r.reused]
    if not new:
        return cold, warm
    cold_ms = statistics.median(new)
    warm_ms = statistics.median(reused) if reused else cold_ms
    affordable = budget_s * 1000 / max(_FLOOR_REQUEST_MS, cold_ms + warm_ms)
    pairs = max(MIN_SAMPLES, int(affordable))
    return min(cold, pairs), min(warm, max(MIN_SAMPLES + 2, pairs))


def back_to_back(run: LadderRun) -> tuple[RequestRecord, ...]:
    """Requests back to back on one kept-alive connection, as a browser fetches a page's
    assets: no pause lets the client's delayed ACK fire early, so a server's small-write
    stall shows on every request."""
    t0 = run.start("back to back")
    plan = run.plan
    # As many as fit the rung's time at the warm speed seen so far (a slow page, or a
    # 200 ms Windows stall, gets fewer), never fewer than a median interval needs.
    seen_ms = [r.total_ms for r in run.records if r.reused]
    count = plan.back_to_back
    if seen_ms:
        typical_ms = max(_FLOOR_REQUEST_MS, statistics.median(seen_ms))
        count = min(count, max(MIN_SAMPLES + 1, int(plan.back_to_back_s * 1000 / typical_ms)))
    mine = in_order(run, run.client(), count, "back_to_back", "back-to-back")
    reused = [r for r in mine if r.reused]
    run.done(
        "back to back",
        "Reused connection, requests back to back",
        t0,
        [
            figure("total_ms", summary_of(r.total_ms for r in reused)),
            figure("receive_ms", summary_of(r.receive_ms for r in reused)),
            figure("wait_ms", summary_of(r.wait_ms for r in reused)),
        ],
    )
    return tuple(mine)


def _figures(cw: ColdWarm, report: ProbeReport) -> list[Figure]:
    figures = [
        figure("cold_total_ms", summary_of(r.total_ms for r in cw.cold)),
        figure("warm_total_ms", summary_of(r.total_ms for r in cw.warm)),
        figure("warm_first_total_ms", summary_of(r.total_ms for r in cw.warm_first)),
        figure("cold_connect_ms", summary_of(r.connect_ms for r in cw.cold)),
        figure("cold_wait_ms", summary_of(r.wait_ms for r in cw.cold)),
        figure("warm_wait_ms", summary_of(r.wait_ms for r in cw.warm)),
        figure("warm_receive_ms", summary_of(r.receive_ms for r in cw.warm)),
        Figure("keep_alive", cw.keep_alive),
    ]
    if cw.keep_alive_reason:
        figures.append(Figure("keep_alive_refused_because", cw.keep_alive_reason))
    for c in report.comparisons:
        if c.phase == "total":
            figures.append(
                Figure(
                    "cold_minus_warm_ms",
                    round(c.diff_ms, 3),
                    "ms",
                    round(c.diff_low_ms, 3),
                    round(c.diff_high_ms, 3),
                )
            )
            figures.append(Figure("beyond_noise", c.significant))
    timed = [r for r in cw.warm if r.app_ms() is not None]
    if timed:
        figures.append(figure("warm_app_ms", summary_of(r.app_ms() for r in timed)))
        figures.append(figure("warm_outside_app_ms", summary_of(outside_app_ms(r) for r in timed)))
        for name in ("view", "tpl", "db", "dbconn", "queue"):
            s = summary_of(metric_ms(r, name) for r in timed)
            if s is not None:
                figures.append(figure(f"warm_{name}_ms", s))
        conns = [metric_desc(r, "conn") for r in cw.warm if r.reused]
        seen = [c for c in conns if c]
        if seen:
            figures.append(
                Figure(
                    "server_saw_new_on_reused_share",
                    round(sum(c == "new" for c in seen) / len(seen), 3),
                )
            )
    return figures

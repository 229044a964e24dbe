"""Per-worker warm-up: ``worker-warmup``, the first requests against the steady state. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    figure,
    metric_desc,
    metric_ms,
    share,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    has_timing,
    iqr_ms,
    make_finding,
    median,
    steady_records,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["worker_warmup"]


def worker_warmup(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    """The first request each worker serves is slow, and that worker is fast afterwards.

    With Server-Timing the app's own time is compared (a queue or a connection tax does
    not count) and a database connect seen only early is the strongest sign; without it,
    the total is compared with the steady state of the same kind (new or reused
    connection). Either way the slow requests must be the first ones: noise is not a prefix.
    """
    wu, cw = ev.warmup, ev.coldwarm
    if wu is None or cw is None or not cw.warm:
        return None
    steady = steady_records(ev)
    timed = has_timing(wu.sequence) and has_timing(cw.warm)
    connect_mode = False
    early = list(wu.sequence) + (list(wu.burst) if timed else [])
    if timed:
        steady_app = [r.app_ms() or 0.0 for r in steady]
        base = median(steady_app)
        floor = max(
            t.warmup_excess_ms,
            t.warmup_spread_factor * iqr_ms(steady_app, t.spread_floor_ms),
            t.warmup_base_share * base,
        )
        steady_connects = share([metric_ms(r, "dbconn") is not None for r in steady])

        def excess(r: RequestRecord) -> float:
            return (r.app_ms() or 0.0) - base

        # When early requests open database connections and the steady state does not,
        # those connects are the evidence and nothing else counts (a loaded machine makes
        # other requests slow at random; it does not make them connect).
        connect_mode = steady_connects < t.warmup_steady_connect_share and any(
            metric_ms(r, "dbconn") is not None for r in early
        )

        def slow(r: RequestRecord) -> bool:
            connect = metric_ms(r, "dbconn")
            if connect_mode:
                return (
                    connect is not None
                    and connect >= t.warmup_connect_ms
                    and excess(r) >= t.warmup_connect_ms
                )
            return excess(r) >= floor
    else:
        # The server's time to first byte, where a worker's warm-up shows: not the client's
        # own phases (a name lookup, an address that timed out, a loaded client reading
        # late), which vary with the client, not with the worker.
        def waits(records: Sequence[RequestRecord]) -> list[float]:
            return [r.wait_ms for r in records]

        cold_base = median(waits(cw.cold)) if cw.cold else median(waits(cw.warm))
        warm_base = median(waits(cw.warm))
        spread = iqr_ms(waits(cw.warm), t.spread_floor_ms)

        def excess(r: RequestRecord) -> float:
            base = warm_base if r.reused else cold_base
            return r.wait_ms - base

        def slow(r: RequestRecord) -> bool:
            base = warm_base if r.reused else cold_base
            return excess(r) >= max(
                t.warmup_excess_ms, t.warmup_spread_factor * spread, t.warmup_base_share * base
            )

    threads = [metric_desc(r, "thread") for r in early]
    named = timed and all(threads)
    if named:
        # Per thread only its first request of the whole run can be warm-up (a worker the
        # first requests missed warms up later); slow later ones are noise, and when noise
        # is as common as the pattern there is no pattern.
        run = sorted(list(early) + list(steady), key=lambda r: r.start_ms)
        seen: set[str | None] = set()
        slow_ones = []
        later = 0
        for r in run:
            name = metric_desc(r, "thread")
            if slow(r):
                if name in seen:
                    later += 1
                else:
                    slow_ones.append(r)
            seen.add(name)
        # A database connect on a worker that had already connected is no noise: its
        # connection was not kept (a short CONN_MAX_AGE, a pool's recycling, the database
        # closing idle sessions), so the first connects were not warm-up either.
        if later > t.warmup_noise_share * len(slow_ones) or (connect_mode and later):
            return None
        workers = len({metric_desc(r, "thread") for r in slow_ones})
    else:
        # Without worker names the slow ones must lead the sequence, and the steady state
        # must be free of them.
        seq_flags = [slow(r) for r in wu.sequence]
        if any(seq_flags[sum(seq_flags) + 1 :]):
            return None
        slow_ones = [r for r in early if slow(r)]
        workers = len(slow_ones)
        if sum(1 for r in steady if slow(r)) > max(
            1, int(t.warmup_steady_slow_share * len(steady))
        ):
            return None
    # Warm-up is paid once per worker: when the new connections of the cold series, made
    # long after the first requests, still pay it, it is a per-connection cost (priced by
    # connection-setup-tax), whatever the server calls its workers.
    if cw.cold and share([slow(r) for r in cw.cold]) >= t.warmup_recurring_share:
        return None
    if workers < t.warmup_min_requests:
        return None
    cost = median([excess(r) for r in slow_ones])
    dbconn = summary_of(metric_ms(r, "dbconn") for r in slow_ones)
    detail = (
        f"{len(slow_ones)} requests, each the first on its worker"
        f"{f' ({workers} threads)' if named else ''}, were slow by {cost:.0f} ms (p50); "
        "later requests on the same workers were not."
    )
    if dbconn is not None:
        detail += f" Each opened a database connection ({dbconn.p50_ms:.0f} ms)."
    return make_finding(
        ev,
        t,
        "worker-warmup",
        "The first request on each worker is slow",
        cost,
        "first request per worker",
        [
            Figure("slow_early_requests", len(slow_ones)),
            Figure("early_requests", len(early)),
            Figure("workers", workers),
            Figure(
                "threads",
                ", ".join(sorted({str(metric_desc(r, "thread")) for r in slow_ones}))
                if named
                else None,
            ),
            figure("dbconn_ms", dbconn),
        ],
        [
            "Open each worker's database connection before the first request: "
            "`lagscope serve` prewarms a pool (Django >= 5.1 + psycopg 3) or one persistent "
            "connection per thread.",
            "With hand-run waitress: run one query per thread at start-up, or use Django's "
            "native pool (OPTIONS={'pool': {'min_size': <threads>}}).",
        ],
        detail,
    )

"""The app's own work: ``slow-app`` and ``many-queries``, from its Server-Timing, each with
what a profiled request showed inside the app when one was asked for
(:mod:`lagscope.diagnose.profiling`). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    count_in_desc,
    figure,
    metric_desc,
    metric_ms,
    own_app_ms,
    shapes,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.profiling import with_profile
from lagscope.diagnose.rules.common import (
    has_timing,
    make_finding,
    median,
    steady_records,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["many_queries", "slow_app"]


# Findings whose cost lands in a reused request's wait (time to first byte) when the app
# reports nothing: a stall lands in the transfer, a redirect in other requests, and
# keepalive-refused's price is the connection's (counted by connection-setup-tax).
_IN_THE_WAIT = (
    "connection-setup-tax",
    "upstream-no-keepalive",
    "proxy-hop-slow",
    "db-connect-per-request",
    "outside-app-every-request",
)


def slow_app(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    finding = _slow_app(ev, t, found)
    return None if finding is None else with_profile(finding, ev)


def many_queries(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    finding = _many_queries(ev, t, found)
    return None if finding is None else with_profile(finding, ev)


def _slow_app(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or not cw.warm:
        return None
    warm = cw.warm
    fix = [
        "Profile the view (queries, template rendering, external calls); lagscope's "
        "Server-Timing splits view, template and database time.",
    ]
    if has_timing(warm):
        own = summary_of(own_app_ms(r) for r in warm)
        if own is None or own.p50_ms < t.slow_app_ms:
            return None
        cost = own.p50_ms
        phase, part_ms, advice = _slow_part(warm, cost, t)
        evidence = [
            Figure("phase", phase),
            figure("app_ms_without_db_connects", own),
            figure("view_ms", summary_of(metric_ms(r, "view") for r in warm)),
            figure("tpl_ms", summary_of(metric_ms(r, "tpl") for r in warm)),
            figure("db_ms", summary_of(metric_ms(r, "db") for r in warm)),
        ]
        detail = f"The app itself spends {cost:.0f} ms per request (its Server-Timing)"
        detail += f", {part_ms:.0f} ms of it in {phase}." if part_ms else "."
        fix = [*advice, *fix]
    else:
        wait = summary_of(r.wait_ms for r in warm)
        assert wait is not None
        explained = sum(
            f.cost_ms or 0.0
            for f in found
            if f.id in _IN_THE_WAIT and f.affects == "every request" and f.severity != "info"
        )
        cost = wait.p50_ms - explained
        if cost < t.slow_app_ms:
            return None
        evidence = [Figure("phase", UNTIMED_PHASE), figure("warm_wait_ms", wait)]
        detail = (
            f"The server takes {cost:.0f} ms to answer on a reused connection. It sends no "
            "Server-Timing, so this cannot be split into app, database and queue: add "
            "lagscope's middleware to see inside."
        )
    return make_finding(
        ev,
        t,
        "slow-app",
        "The app's own work is slow",
        cost,
        "every request",
        evidence,
        fix,
        detail,
        severity="critical" if cost >= t.slow_app_critical_ms else "warning",
    )


# Where a slow app's time is, when one part holds most of it (the "phase" figure).
DB_PHASE = "the app's database queries"
TPL_PHASE = "the app's template rendering"
OWN_PHASE = "the app's own code"
UNTIMED_PHASE = "before the first byte on a reused connection (the server's own time)"


def _slow_part(
    warm: Sequence[RequestRecord], own_ms: float, t: Thresholds
) -> tuple[str, float, list[str]]:
    """The part of the app's own time that holds most of it (Server-Timing ``db`` or
    ``tpl``), what it holds, and the advice for it; the app's own code otherwise."""
    db = median([metric_ms(r, "db") or 0.0 for r in warm])
    tpl = median([metric_ms(r, "tpl") or 0.0 for r in warm])
    if db >= t.slow_app_part_share * own_ms and db >= tpl:
        queries = median([float(count_in_desc(metric_desc(r, "db")) or 0) for r in warm])
        return (
            DB_PHASE,
            db,
            [
                f"The database holds the time ({queries:.0f} queries, {db:.0f} ms): run the "
                "slow query under EXPLAIN ANALYZE (Django: queryset.explain(analyze=True)); "
                "an index, a narrower query or less data usually fixes it.",
            ],
        )
    if tpl >= t.slow_app_part_share * own_ms:
        return (
            TPL_PHASE,
            tpl,
            ["Template rendering holds the time: render less per page, or cache fragments."],
        )
    return OWN_PHASE, 0.0, []


def _many_queries(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    steady = [r for r in steady_records(ev) if metric_desc(r, "db") is not None]
    if len(steady) < t.min_steady_requests:
        return None
    counts = [count_in_desc(metric_desc(r, "db")) for r in steady]
    got = [s for s in (shapes(r) for r in steady) if s is not None]
    repeats = median([float(s[1]) for s in got]) if got else None
    n_shapes = median([float(s[0]) for s in got]) if got else None
    queries = median([float(c) for c in counts if c is not None])
    db = summary_of(metric_ms(r, "db") for r in steady)
    evidence = [
        Figure("queries", queries),
        Figure("distinct_shapes", n_shapes),
        Figure("max_repeats_of_one_shape", repeats),
        figure("db_ms", db),
    ]
    if repeats is not None and repeats >= t.repeated_query_count:
        return make_finding(
            ev,
            t,
            "many-queries",
            f"One query runs {repeats:.0f} times per request (N+1)",
            db.p50_ms if db else None,
            "every request",
            evidence,
            [
                "Fetch related rows in one query: select_related() for foreign keys, "
                "prefetch_related() for reverse and many-to-many relations.",
            ],
            f"Each request runs {queries:.0f} queries, one statement shape {repeats:.0f} times: "
            "the cost grows with the data.",
            severity="warning",
        )
    if queries >= t.many_queries_count:
        return make_finding(
            ev,
            t,
            "many-queries",
            f"Each request runs {queries:.0f} queries",
            db.p50_ms if db else None,
            "every request",
            evidence,
            ["Check whether the view needs them all; combine what it can."],
            severity="info",
        )
    return None

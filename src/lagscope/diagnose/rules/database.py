"""Database connections: ``db-connect-per-request`` and ``db-connect-slow``. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    count_in_desc,
    figure,
    metric_desc,
    metric_ms,
    share,
    summary_of,
)
from lagscope.diagnose.model import Affects, Figure, Finding
from lagscope.diagnose.rules.common import (
    make_finding,
    steady_records,
)
from lagscope.diagnose.rules.connections import APP_PHASE
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["DB_KEEP_CONNECTIONS_FIX", "db_connect_per_request", "db_connect_slow"]


# Also the fix of ``manage.py lagscope db``'s settings-based db-connect-per-request.
DB_KEEP_CONNECTIONS_FIX = (
    "Keep connections: DATABASES['default']['CONN_MAX_AGE'] = None (or 600) with "
    "CONN_HEALTH_CHECKS = True; or Django >= 5.1 with psycopg 3: "
    "OPTIONS = {'pool': {'min_size': 2}}.",
    "`lagscope serve` does either for you and opens them before the first request.",
)


def db_connect_per_request(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    steady = [r for r in steady_records(ev) if r.server_timing]
    fix = list(DB_KEEP_CONNECTIONS_FIX)
    if len(steady) >= t.min_steady_requests:
        flags = [metric_ms(r, "dbconn") is not None for r in steady]
        if share(flags) >= t.db_per_request_share:
            dbconn = summary_of(metric_ms(r, "dbconn") for r in steady)
            assert dbconn is not None
            return make_finding(
                ev,
                t,
                "db-connect-per-request",
                "Every request opens a new database connection",
                dbconn.p50_ms,
                "every request",
                [
                    figure("dbconn_ms", dbconn),
                    Figure("requests_with_connect_share", round(share(flags), 3)),
                ],
                fix,
                f"{share(flags):.0%} of requests opened a database connection inside the app "
                f"(Server-Timing dbconn, {dbconn.p50_ms:.1f} ms each, p50), reused client "
                "connections too: CONN_MAX_AGE=0 or no pool. Keeping connections saves it on "
                "every request.",
            )
    # Without the app's own account, PostgreSQL's session count says it.
    db = ev.database
    per_request = db.sessions_per_request if db is not None else None
    if db is not None and per_request is not None and per_request >= t.db_per_request_share:
        connect = summary_of(db.connect_ms)
        return make_finding(
            ev,
            t,
            "db-connect-per-request",
            "Every request opens a new database connection",
            connect.p50_ms if connect else None,
            "every request",
            [Figure("sessions_per_request", per_request), figure("connect_ms", connect)],
            fix,
            f"PostgreSQL counted {per_request:.2f} new sessions per request while the app "
            "was measured; each costs a connect (timed here straight through psycopg).",
        )
    return None


def _per_connect_ms(records: Sequence[RequestRecord]) -> list[float]:
    out: list[float] = []
    for r in records:
        ms = metric_ms(r, "dbconn")
        if ms is None:
            continue
        n = count_in_desc(metric_desc(r, "dbconn")) or 1
        out.append(ms / max(1, n))
    return out


def db_connect_slow(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    records = list(steady_records(ev)) + (
        list(ev.warmup.sequence + ev.warmup.burst) if ev.warmup else []
    )
    app_side = summary_of(_per_connect_ms(records))
    db = ev.database
    direct = summary_of(db.connect_ms) if db is not None and db.connect_ms else None
    gss_off = summary_of(db.gss_disabled_connect_ms) if db and db.gss_disabled_connect_ms else None
    worst = max((s.p50_ms for s in (app_side, direct) if s is not None), default=None)
    if worst is None or worst < t.db_connect_slow_ms:
        return None
    fix = [
        "Connect less: persistent connections or a pool, opened before the first request "
        "(`lagscope serve` does both), so no request waits for a connect.",
    ]
    gss = (
        direct is not None
        and gss_off is not None
        and direct.p50_ms - gss_off.p50_ms >= t.gss_saving_ms
    )
    if gss:
        fix.insert(0, "Add 'gssencmode': 'disable' to DATABASES OPTIONS (libpq tries GSS first).")
    fix.append(
        "If a connect is slow only on this machine, security software inspecting the "
        "connection is the usual cause: ask IT for an exclusion for the database port."
    )
    covered = [
        f
        for f in found
        if f.severity != "info"
        and (
            f.id in ("db-connect-per-request", "worker-warmup")
            # A tax on new connections measured inside the app: these connects are it.
            or (f.id == "connection-setup-tax" and Figure("phase", APP_PHASE) in f.evidence)
        )
    ]
    # Steady-state requests that still connect, when fewer than "per request": the
    # connections are made again and again, not kept.
    steady = [r for r in steady_records(ev) if r.server_timing]
    again = share([metric_ms(r, "dbconn") is not None for r in steady])
    recycled = bool(steady) and 0 < again < t.db_per_request_share
    if recycled and not covered:
        fix.insert(
            0,
            "Keep connections longer: CONN_MAX_AGE = None (or longer than the gaps between "
            "requests) with CONN_HEALTH_CHECKS = True; a pool's max_lifetime in minutes, not "
            "seconds; no database or proxy setting that closes idle sessions early.",
        )
    affects: Affects = "every new database connection"
    if any(f.id == "db-connect-per-request" for f in covered):
        affects = "every request"
    elif any(f.id == "connection-setup-tax" for f in covered):
        affects = "first request per connection"
    elif covered:
        affects = "first request per worker"
    return make_finding(
        ev,
        t,
        "db-connect-slow",
        "Opening a database connection is slow",
        worst,
        affects,
        [
            figure("app_dbconn_per_connect_ms", app_side),
            figure("direct_connect_ms", direct),
            figure("direct_connect_gssencmode_disable_ms", gss_off),
            Figure("steady_requests_with_connect_share", round(again, 3) if steady else None),
        ],
        fix,
        f"A database connect takes {worst:.0f} ms (local PostgreSQL: 5-12 ms)."
        + (" Disabling GSS encryption saves most of it." if gss else "")
        + (
            f" {again:.0%} of steady-state requests still opened one: the app's database "
            "connections are not kept, each is made again after a while and a request pays it."
            if recycled and not covered
            else ""
        )
        + (f" The cost is counted in {covered[0].id}." if covered else ""),
        # Where another finding already carries these connects' cost, this one explains it.
        severity="info" if covered else None,
    )

"""Diagnosis rules: one small pure unit per finding, over measured evidence. Pure.

Each rule is a function ``(evidence, thresholds, earlier findings) -> Finding | None``,
listed in :data:`RULES` in the order they run (a rule may defer to an earlier finding that
already carries the same cost, as ``db-connect-slow`` does to ``db-connect-per-request``).
Thresholds come only from :mod:`lagscope.diagnose.thresholds`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from lagscope.diagnose.evidence import (
    ColdWarm,
    Evidence,
    count_in_desc,
    figure,
    metric_desc,
    metric_ms,
    outside_app_ms,
    own_app_ms,
    shapes,
    share,
    summary_of,
)
from lagscope.diagnose.model import Affects, Figure, Finding, Severity
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord
from lagscope.probe.stats import compare

__all__ = [
    "DB_KEEP_CONNECTIONS_FIX",
    "RULES",
    "Rule",
    "db_connect_slow",
    "evaluate",
    "fallback_cost_ms",
    "setup_cost_ms",
]

Rule = Callable[[Evidence, Thresholds, Sequence[Finding]], Finding | None]


def _severity(cost_ms: float | None, t: Thresholds, base: Severity = "warning") -> Severity:
    if base == "warning" and cost_ms is not None and cost_ms >= t.critical_ms:
        return "critical"
    return base


def _finding(
    ev: Evidence,
    t: Thresholds,
    id: str,
    title: str,
    cost_ms: float | None,
    affects: Affects,
    evidence: Sequence[Figure],
    fix: Sequence[str],
    detail: str = "",
    severity: Severity | None = None,
    confirm: str | None = None,
) -> Finding:
    return Finding(
        id=id,
        title=title,
        severity=severity or _severity(cost_ms, t),
        cost_ms=None if cost_ms is None else round(max(0.0, cost_ms), 3),
        affects=affects,
        evidence=tuple(evidence),
        fix=tuple(fix),
        confirm=confirm or ev.command or f"lagscope diagnose {ev.url}",
        detail=detail,
    )


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _has_timing(records: Sequence[RequestRecord]) -> bool:
    return any(r.app_ms() is not None for r in records)


def _steady(ev: Evidence) -> tuple[RequestRecord, ...]:
    """Requests after warm-up: the cold and warm series."""
    cw = ev.coldwarm
    return () if cw is None else cw.cold + cw.warm


def _totals(records: Sequence[RequestRecord]) -> list[float]:
    return [r.total_ms for r in records]


# --- shared figures -------------------------------------------------------------------------


def fallback_cost_ms(ev: Evidence) -> float:
    """What the addresses that failed before the answering one cost each new connection:
    the time of those failed attempts, as a client that tries them in order pays it."""
    res = ev.resolution
    if res is None or not res.addresses:
        return 0.0
    first_ok = next((i for i, a in enumerate(res.addresses) if a.connects), None)
    if not first_ok:
        return 0.0
    return sum(_median(a.connect_ms) for a in res.addresses[:first_ok])


def setup_cost_ms(ev: Evidence) -> tuple[float, bool] | None:
    """Cold minus warm total (without any address fallback and any extra app time): the
    price of a new connection, and whether it is beyond noise."""
    cw = ev.coldwarm
    if cw is None or not cw.keep_alive or len(cw.cold) < 2 or len(cw.warm) < 2:
        return None
    cold = summary_of(_totals(cw.cold))
    warm = summary_of(_totals(cw.warm))
    assert cold is not None and warm is not None
    cmp = compare("total", cold, warm)
    cold_fallback = _median(
        [sum(a.ms for a in r.attempts if a.outcome != "connected") for r in cw.cold]
    )
    app_extra = 0.0
    if _has_timing(cw.cold) and _has_timing(cw.warm):
        cold_app = summary_of(r.app_ms() for r in cw.cold)
        warm_app = summary_of(r.app_ms() for r in cw.warm)
        if cold_app is not None and warm_app is not None:
            app_extra = max(0.0, cold_app.p50_ms - warm_app.p50_ms)
    return cmp.diff_ms - cold_fallback - app_extra, cmp.significant


# --- environment ------------------------------------------------------------------------------


def proxy_env(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    env = ev.environment
    if not env.proxy_vars:
        return None
    figures = [Figure(name, value) for name, value in env.proxy_vars]
    if env.proxy_applies:
        return _finding(
            ev,
            t,
            "proxy-env",
            "Proxy variables send this URL through a proxy",
            None,
            "every request",
            [*figures, Figure("applies_to_this_host", True)],
            [
                "Add the host to NO_PROXY (e.g. NO_PROXY=localhost,127.0.0.1,::1), or "
                "unset HTTP_PROXY/HTTPS_PROXY for local work.",
            ],
            "Clients that honour these variables (requests, httpx, urllib, curl) send this "
            "URL through the proxy; lagscope measured the direct path and sent nothing "
            "through the proxy, so its cost is not measured here.",
            severity="warning",
        )
    return _finding(
        ev,
        t,
        "proxy-env",
        "Proxy variables are set, and NO_PROXY excludes this host",
        None,
        "nothing measured here",
        [*figures, Figure("applies_to_this_host", False)],
        ["Nothing to do for this host."],
        severity="info",
    )


# --- name resolution ------------------------------------------------------------------------


def localhost_fallback(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    res = ev.resolution
    if res is None:
        return None
    first_ok = next((i for i, a in enumerate(res.addresses) if a.connects), None)
    fix = [
        "Listen on both loopback addresses: `lagscope serve` serves localhost on 127.0.0.1 "
        "and ::1 (waitress: listen='127.0.0.1:8000 [::1]:8000').",
        "Or use 127.0.0.1 in URLs and in DATABASES HOST instead of localhost.",
    ]
    if first_ok:
        failed = res.addresses[:first_ok]
        cost = fallback_cost_ms(ev)
        evidence = [
            Figure(f"{a.address} ({a.family})", "/".join(sorted(set(a.outcomes)))) for a in failed
        ]
        evidence += [
            figure("hostname_connect_ms", summary_of(res.hostname_connect_ms)),
            Figure("answering_address", res.addresses[first_ok].address),
            Figure("chrome_waits_ms", t.chrome_fallback_ms),
            Figure("windows_sequential_client_ms", t.windows_refused_ms),
        ]
        return _finding(
            ev,
            t,
            "localhost-fallback",
            f"{res.host} is tried first at an address where nothing answers",
            cost,
            "first request per connection",
            evidence,
            fix,
            f"Every new connection first tries {failed[0].address}, which fails, then falls "
            f"back. Here that costs {cost:.1f} ms; Chrome waits {t.chrome_fallback_ms:g} ms "
            f"before falling back and sequential clients on Windows ~{t.windows_refused_ms:g} ms.",
            severity=_severity(cost, t),
        )
    if res.unlistened and res.is_name:
        return _finding(
            ev,
            t,
            "localhost-fallback",
            f"{res.host} answers on one loopback address only",
            0.0,
            "nothing measured here",
            [Figure("refusing", ", ".join(res.unlistened))],
            fix,
            "This machine resolves the name to the address that answers, so nothing is lost "
            f"here; where it resolves to {res.unlistened[0]} first (Windows does), Chrome "
            f"pays {t.chrome_fallback_ms:g} ms and sequential clients ~{t.windows_refused_ms:g} "
            "ms per new connection.",
            severity="info",
        )
    return None


# --- connections ------------------------------------------------------------------------------


def _where_setup(cw: ColdWarm) -> str:
    cold_c = summary_of(r.connect_ms for r in cw.cold)
    cold_w = summary_of(r.wait_ms for r in cw.cold)
    warm_w = summary_of(r.wait_ms for r in cw.warm)
    connect = cold_c.p50_ms if cold_c else 0.0
    wait = (cold_w.p50_ms - warm_w.p50_ms) if cold_w and warm_w else 0.0
    if connect >= wait:
        return "in the TCP connect itself (a connect-level filter)"
    return (
        "before the first response byte of a new connection (stream inspection, a "
        "user-space filter or proxy, or a cost the server pays per connection)"
    )


_TAX_FIX = (
    "Reuse connections at every hop: clients and browsers keep connections alive when the "
    "server does (`lagscope serve` keeps them; waitress needs Content-Length on every "
    "response).",
    "Put nginx in front with upstream keep-alive: `lagscope nginx-config --upstream HOST:PORT`.",
    "Ask IT for a real-time scanning exclusion for the app's process and loopback traffic "
    "(Windows Defender: Add-MpPreference -ExclusionProcess python.exe), instead of turning "
    "protection off.",
)


def connection_setup_tax(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None:
        return None
    if cw.keep_alive:
        got = setup_cost_ms(ev)
        if got is None:
            return None
        cost, significant = got
        if not significant or cost < t.setup_tax_ms:
            return None
        cold = summary_of(_totals(cw.cold))
        warm = summary_of(_totals(cw.warm))
        return _finding(
            ev,
            t,
            "connection-setup-tax",
            "Every new connection pays a setup tax; reused connections do not",
            cost,
            "first request per connection",
            [
                figure("cold_total_ms", cold),
                figure("warm_total_ms", warm),
                figure("cold_connect_ms", summary_of(r.connect_ms for r in cw.cold)),
                figure("cold_wait_ms", summary_of(r.wait_ms for r in cw.cold)),
                figure("warm_wait_ms", summary_of(r.wait_ms for r in cw.warm)),
            ],
            _TAX_FIX,
            f"The first request on a new connection costs {cost:.0f} ms more than one on a "
            f"reused connection, {_where_setup(cw)}. Security software that inspects new "
            "connections has this signature.",
        )
    # Keep-alive refused: every request is a new connection, so there is no reused one to
    # compare with; the app's own account shows the tax as time outside the app.
    records = cw.cold + cw.warm
    outside = summary_of(outside_app_ms(r) for r in records)
    if outside is None or outside.p50_ms - t.proxy_floor_ms < t.setup_tax_ms:
        return None
    return _finding(
        ev,
        t,
        "connection-setup-tax",
        "Every request pays a new-connection tax (the server does not keep connections)",
        outside.p50_ms,
        "every request",
        [
            figure("outside_app_ms", outside),
            figure("app_ms", summary_of(r.app_ms() for r in records)),
        ],
        _TAX_FIX,
        "The server closes every connection, so every request opens a new one, and each "
        f"spends {outside.p50_ms:.0f} ms outside the app before the first response byte.",
    )


def keepalive_refused(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or cw.keep_alive:
        return None
    records = cw.cold + cw.warm
    connect = summary_of(r.connect_ms for r in records)
    outside = summary_of(outside_app_ms(r) for r in records)
    cost = (connect.p50_ms if connect else 0.0) + (
        max(0.0, outside.p50_ms - t.proxy_floor_ms) if outside else 0.0
    )
    reason = cw.keep_alive_reason or "it closed the connection"
    fix = [
        "Serve with `lagscope serve`, which adds Content-Length to every response it can "
        "size, so waitress keeps the connection open.",
    ]
    if "delimited by closing" in reason or "Connection: close" in reason:
        fix.append(
            "Django on waitress: keep django.middleware.common.CommonMiddleware (it sets "
            "Content-Length); streaming responses have none, so waitress closes after them."
        )
    if "HTTP/1.0" in reason:
        fix.append("Answer with HTTP/1.1 (or HTTP/1.0 with Connection: keep-alive).")
    fix.append(
        "gunicorn's sync worker never keeps connections: use --worker-class gthread, or "
        "put nginx in front."
    )
    return _finding(
        ev,
        t,
        "keepalive-refused",
        "The server closes the connection after every response",
        cost,
        "every request",
        [
            Figure("reason", reason),
            figure("connect_ms", connect),
            figure("outside_app_ms", outside),
        ],
        fix,
        f"The server refused keep-alive ({reason}), so every request pays a new "
        "connection, and any per-connection tax on this machine with it.",
    )


def upstream_no_keepalive(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None:
        return None
    reused = [r for r in cw.warm if r.reused]
    seen = [d for d in (metric_desc(r, "conn") for r in reused) if d is not None]
    fix = [
        "nginx needs all three: `upstream app { server HOST:PORT; keepalive 16; }`, "
        '`proxy_http_version 1.1;` and `proxy_set_header Connection "";` — '
        "`lagscope nginx-config --upstream HOST:PORT` writes them.",
    ]
    if len(seen) >= 3 and share([d == "new" for d in seen]) >= 0.8:
        outside = summary_of(outside_app_ms(r) for r in reused)
        queue = summary_of(metric_ms(r, "queue") for r in reused)
        hop = _direct_hop(ev)
        cost = hop[0] if hop is not None else (outside.p50_ms if outside else 0.0)
        return _finding(
            ev,
            t,
            "upstream-no-keepalive",
            "A proxy opens a new upstream connection for every request",
            cost,
            "every request",
            [
                Figure("client_connection_reused", True),
                Figure(
                    "server_saw_new_connection_share", round(share([d == "new" for d in seen]), 3)
                ),
                figure("outside_app_ms", outside),
                figure("queue_ms", queue),
            ],
            fix,
            "The client's connection was reused, yet the app saw a new connection on every "
            "request: the proxy in between does not keep upstream connections, so every "
            "request pays a new connection to the app.",
        )
    hop = _direct_hop(ev)
    if hop is None or ev.direct is None:
        return None
    hop_ms, significant = hop
    direct_setup = _setup(ev.direct)
    if (
        significant
        and hop_ms >= t.proxy_hop_ms
        and direct_setup is not None
        and direct_setup >= t.setup_tax_ms
        and hop_ms >= 0.5 * direct_setup
    ):
        return _finding(
            ev,
            t,
            "upstream-no-keepalive",
            "A proxy opens a new upstream connection for every request",
            hop_ms,
            "every request",
            [
                Figure("proxy_hop_ms", round(hop_ms, 3)),
                Figure("direct_new_connection_ms", round(direct_setup, 3)),
            ],
            fix,
            f"Through the proxy, a request on a reused connection costs {hop_ms:.0f} ms more "
            f"than straight to the app, about what a new connection to the app costs "
            f"({direct_setup:.0f} ms): the proxy does not reuse upstream connections.",
        )
    return None


def proxy_hop_slow(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    if any(f.id == "upstream-no-keepalive" for f in found):
        return None
    hop = _direct_hop(ev)
    if hop is None or not hop[1] or hop[0] < t.proxy_hop_ms:
        return None
    return _finding(
        ev,
        t,
        "proxy-hop-slow",
        "The reverse proxy adds time to every request",
        hop[0],
        "every request",
        [Figure("proxy_hop_ms", round(hop[0], 3))],
        [
            "Check the proxy's buffering and upstream settings; `lagscope nginx-config` "
            "writes a config that adds well under a millisecond."
        ],
    )


def _setup(cw: ColdWarm) -> float | None:
    if not cw.keep_alive or not cw.cold or not cw.warm:
        return None
    return _median(_totals(cw.cold)) - _median(_totals(cw.warm))


def _direct_hop(ev: Evidence) -> tuple[float, bool] | None:
    """Warm through the proxy minus warm straight to the app, and whether beyond noise."""
    cw, direct = ev.coldwarm, ev.direct
    if cw is None or direct is None or not cw.warm or not direct.warm:
        return None
    via = summary_of(_totals(cw.warm))
    straight = summary_of(_totals(direct.warm))
    assert via is not None and straight is not None
    cmp = compare("total", via, straight)
    return cmp.diff_ms, cmp.significant


# --- database -----------------------------------------------------------------------------------

# Also the fix of ``manage.py lagscope db``'s settings-based db-connect-per-request.
DB_KEEP_CONNECTIONS_FIX = (
    "Keep connections: DATABASES['default']['CONN_MAX_AGE'] = None (or 600) with "
    "CONN_HEALTH_CHECKS = True; or Django >= 5.1 with psycopg 3: "
    "OPTIONS = {'pool': {'min_size': 2}}.",
    "`lagscope serve` does either for you and opens them before the first request.",
)


def db_connect_per_request(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    steady = [r for r in _steady(ev) if r.server_timing]
    fix = list(DB_KEEP_CONNECTIONS_FIX)
    if len(steady) >= 3:
        flags = [metric_ms(r, "dbconn") is not None for r in steady]
        if share(flags) >= t.db_per_request_share:
            dbconn = summary_of(metric_ms(r, "dbconn") for r in steady)
            assert dbconn is not None
            return _finding(
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
                f"{share(flags):.0%} of requests opened a database connection "
                f"({dbconn.p50_ms:.1f} ms each, p50): CONN_MAX_AGE=0 or no pool.",
            )
    # Without the app's own account, PostgreSQL's session count says it.
    db = ev.database
    per_request = db.sessions_per_request if db is not None else None
    if db is not None and per_request is not None and per_request >= t.db_per_request_share:
        connect = summary_of(db.connect_ms)
        return _finding(
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
    records = list(_steady(ev)) + (list(ev.warmup.sequence + ev.warmup.burst) if ev.warmup else [])
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
        if f.id in ("db-connect-per-request", "worker-warmup") and f.severity != "info"
    ]
    affects: Affects = "every new database connection"
    if any(f.id == "db-connect-per-request" for f in covered):
        affects = "every request"
    elif covered:
        affects = "first request per worker"
    return _finding(
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
        ],
        fix,
        f"A database connect takes {worst:.0f} ms (local PostgreSQL: 5-12 ms)."
        + (" Disabling GSS encryption saves most of it." if gss else "")
        + (f" The cost is counted in {covered[0].id}." if covered else ""),
        # Where another finding already carries these connects' cost, this one explains it.
        severity="info" if covered else None,
    )


# --- warm-up ------------------------------------------------------------------------------------


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
    steady = _steady(ev)
    timed = _has_timing(wu.sequence) and _has_timing(cw.warm)
    early = list(wu.sequence) + (list(wu.burst) if timed else [])
    if timed:
        steady_app = [r.app_ms() or 0.0 for r in steady]
        base = _median(steady_app)
        floor = max(t.warmup_excess_ms, 5 * _spread(steady_app), 0.5 * base)
        steady_connects = share([metric_ms(r, "dbconn") is not None for r in steady])

        def excess(r: RequestRecord) -> float:
            return (r.app_ms() or 0.0) - base

        # When early requests open database connections and the steady state does not,
        # those connects are the evidence and nothing else counts (a loaded machine makes
        # other requests slow at random; it does not make them connect).
        connect_mode = steady_connects < 0.5 and any(
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
        cold_base = _median(_totals(cw.cold)) if cw.cold else _median(_totals(cw.warm))
        warm_base = _median(_totals(cw.warm))
        spread = _spread(_totals(cw.warm))

        def excess(r: RequestRecord) -> float:
            base = warm_base if r.reused else cold_base
            return r.total_ms - base

        def slow(r: RequestRecord) -> bool:
            base = warm_base if r.reused else cold_base
            return excess(r) >= max(t.warmup_excess_ms, 5 * spread, 0.5 * base)

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
        if later * 2 > len(slow_ones):
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
        if sum(1 for r in steady if slow(r)) > max(1, len(steady) // 10):
            return None
    if workers < t.warmup_min_requests:
        return None
    cost = _median([excess(r) for r in slow_ones])
    dbconn = summary_of(metric_ms(r, "dbconn") for r in slow_ones)
    detail = (
        f"{len(slow_ones)} requests, each the first on its worker"
        f"{f' ({workers} threads)' if named else ''}, were slow by {cost:.0f} ms (p50); "
        "later requests on the same workers were not."
    )
    if dbconn is not None:
        detail += f" Each opened a database connection ({dbconn.p50_ms:.0f} ms)."
    return _finding(
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


def _spread(values: Sequence[float]) -> float:
    if len(values) < 4:
        return 0.5
    ordered = sorted(values)
    q1 = ordered[len(ordered) // 4]
    q3 = ordered[(3 * len(ordered)) // 4]
    return max(0.5, q3 - q1)


# --- small writes -------------------------------------------------------------------------------


def small_write_stall(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None:
        return None
    warm = [r for r in cw.warm if r.reused]
    if len(warm) < 4:
        return None
    for timer in t.delayed_ack_timers_ms:
        low, high = timer * (1 - t.delayed_ack_tolerance), timer * (1 + t.delayed_ack_tolerance)
        for phase in ("receive", "wait"):
            values = [r.receive_ms if phase == "receive" else r.wait_ms for r in warm]
            if phase == "wait":
                # A stall in waiting shows as reused connections slower than new ones.
                base = _median([r.wait_ms for r in cw.cold]) if cw.cold else 0.0
                values = [v - base for v in values]
            inside = share([low <= v <= high for v in values])
            if inside < t.stall_share:
                continue
            if phase == "wait" and _has_timing(warm):
                # The app's own time explains a wait; only time outside it can be a stall.
                outside = [outside_app_ms(r) or 0.0 for r in warm]
                if share([low <= v <= high for v in outside]) < t.stall_share:
                    continue
            cold_values = [r.receive_ms if phase == "receive" else 0.0 for r in cw.cold]
            # Load only ever adds to a timer's delay, so the lower quartile of the stalls is
            # the timer's price, the median the timer plus this machine's noise.
            stalls = sorted(v for v in values if low <= v <= high)
            cost = stalls[len(stalls) // 4] - (
                _median(cold_values) if phase == "receive" and cold_values else 0.0
            )
            gaps = summary_of(r.receive_ms - (r.head_ms or 0.0) for r in warm)
            return _finding(
                ev,
                t,
                "small-write-stall",
                f"Reused connections stall ~{timer:g} ms (Nagle + delayed ACK)",
                cost,
                "every request",
                [
                    figure(f"warm_{phase}_ms", summary_of(values)),
                    figure("cold_receive_ms", summary_of(r.receive_ms for r in cw.cold)),
                    figure("warm_head_to_body_gap_ms", gaps),
                    Figure("share_near_timer", round(inside, 3)),
                    Figure("timer_ms", timer),
                ],
                [
                    "The server writes the response head and body in separate small writes "
                    "without TCP_NODELAY: set TCP_NODELAY on accepted sockets, or write head "
                    "and body in one send (waitress and `lagscope serve` do both).",
                ],
                f"{inside:.0%} of requests on reused connections spent ~{timer:g} ms in "
                f"{phase}, the delayed-ACK timer: the server's second small write waited for "
                "an ACK the client was delaying.",
            )
    return None


# --- queueing -------------------------------------------------------------------------------------


def server_queueing(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    levels = sorted(ev.queue, key=lambda lv: lv.clients)
    if len(levels) < 2 or levels[0].clients != 1:
        return None
    timed = all(_has_timing(lv.records) for lv in levels)

    def outside(lv_records: Sequence[RequestRecord]) -> float:
        if timed:
            queue = [metric_ms(r, "queue") for r in lv_records]
            if all(q is not None for q in queue):
                return _median([q or 0.0 for q in queue]) + _median(
                    [
                        (outside_app_ms(r) or 0.0) - (metric_ms(r, "queue") or 0.0)
                        for r in lv_records
                    ]
                )
            return _median([outside_app_ms(r) or 0.0 for r in lv_records])
        return _median([r.wait_ms for r in lv_records])

    def app(lv_records: Sequence[RequestRecord]) -> float:
        return _median([r.app_ms() or 0.0 for r in lv_records]) if timed else 0.0

    base_out, base_app = outside(levels[0].records), app(levels[0].records)
    # Waiting is judged against the time already spent outside the app with one client:
    # 40 ms more is a queue when that time was 1 ms, and noise when it was a 200 ms tax.
    floor = max(t.queue_ms, 0.5 * base_out)
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
    for lv in levels[1:]:
        if lv.clients > t.queue_max_clients or not lv.records:
            continue
        waited = outside(lv.records) - base_out
        grew = app(lv.records) - base_app
        # Waiting for a worker cannot exceed the service time of every other client ahead
        # (one worker, all of them queued); more than that is this machine's CPU starved
        # (other processes, the GIL), not a worker shortage.
        ceiling = t.queue_ceiling * (lv.clients - 1) * service
        if floor <= waited <= ceiling and grew < 0.5 * waited:
            return _finding(
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


# --- the app --------------------------------------------------------------------------------------


def slow_app(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or not cw.warm:
        return None
    warm = cw.warm
    if _has_timing(warm):
        own = summary_of(own_app_ms(r) for r in warm)
        if own is None or own.p50_ms < t.slow_app_ms:
            return None
        cost = own.p50_ms
        evidence = [
            figure("app_ms_without_db_connects", own),
            figure("view_ms", summary_of(metric_ms(r, "view") for r in warm)),
            figure("tpl_ms", summary_of(metric_ms(r, "tpl") for r in warm)),
            figure("db_ms", summary_of(metric_ms(r, "db") for r in warm)),
        ]
        detail = f"The app itself spends {cost:.0f} ms per request (its Server-Timing)."
    else:
        wait = summary_of(r.wait_ms for r in warm)
        assert wait is not None
        explained = sum(
            f.cost_ms or 0.0
            for f in found
            if f.affects == "every request" and f.severity != "info" and f.id != "proxy-env"
        )
        cost = wait.p50_ms - explained
        if cost < t.slow_app_ms:
            return None
        evidence = [figure("warm_wait_ms", wait)]
        detail = (
            f"The server takes {cost:.0f} ms to answer on a reused connection. It sends no "
            "Server-Timing, so this cannot be split into app, database and queue: add "
            "lagscope's middleware to see inside."
        )
    return _finding(
        ev,
        t,
        "slow-app",
        "The app's own work is slow",
        cost,
        "every request",
        evidence,
        [
            "Profile the view (queries, template rendering, external calls); lagscope's "
            "Server-Timing splits view, template and database time.",
        ],
        detail,
        severity="critical" if cost >= t.slow_app_critical_ms else "warning",
    )


def many_queries(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    steady = [r for r in _steady(ev) if metric_desc(r, "db") is not None]
    if len(steady) < 3:
        return None
    counts = [count_in_desc(metric_desc(r, "db")) for r in steady]
    got = [s for s in (shapes(r) for r in steady) if s is not None]
    repeats = _median([float(s[1]) for s in got]) if got else None
    n_shapes = _median([float(s[0]) for s in got]) if got else None
    queries = _median([float(c) for c in counts if c is not None])
    db = summary_of(metric_ms(r, "db") for r in steady)
    evidence = [
        Figure("queries", queries),
        Figure("distinct_shapes", n_shapes),
        Figure("max_repeats_of_one_shape", repeats),
        figure("db_ms", db),
    ]
    if repeats is not None and repeats >= t.repeated_query_count:
        return _finding(
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
        return _finding(
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


# --- HTTP hygiene ---------------------------------------------------------------------------------


def redirects(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or not hy.redirects:
        return None
    cost = sum(h.ms for h in hy.redirects)
    if cost < t.redirect_ms:
        return None
    return _finding(
        ev,
        t,
        "redirects",
        f"The URL redirects {len(hy.redirects)} time(s) before the answer",
        cost,
        "every request",
        [Figure(f"{h.status} {h.url}", round(h.ms, 3), "ms") for h in hy.redirects],
        [
            f"Link to the final URL ({hy.redirects[-1].location}); for Django's APPEND_SLASH, "
            "write URLs with the trailing slash."
        ],
        "Each redirect costs a full round trip before the real request starts.",
        severity="warning",
    )


_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "+json",
    "+xml",
    "image/svg",
)


def uncompressed_text(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or hy.compressed_bytes is None or hy.content_encoding:
        return None
    ctype = (hy.content_type or "").lower()
    if not any(k in ctype for k in _TEXT_TYPES):
        return None
    saving = hy.body_bytes - hy.compressed_bytes
    if saving < t.compress_min_saving_bytes or saving < t.compress_min_saving_share * hy.body_bytes:
        return None
    cost = hy.receive_ms * saving / max(1, hy.body_bytes)
    return _finding(
        ev,
        t,
        "uncompressed-text",
        f"{hy.body_bytes / 1000:.0f} KB of text sent uncompressed",
        cost,
        "every request",
        [
            Figure("body_bytes", hy.body_bytes, "B"),
            Figure("gzip_bytes", hy.compressed_bytes, "B"),
            Figure("receive_ms", round(hy.receive_ms, 3), "ms"),
        ],
        [
            "Compress at the proxy (nginx: gzip on; gzip_types application/json text/css ...) "
            "or in Django with GZipMiddleware; on loopback it buys nothing."
        ],
        f"gzip would save {saving / 1000:.0f} KB ({saving / hy.body_bytes:.0%}); over this "
        f"link that is {cost:.1f} ms, more on a slow network.",
        severity="warning" if cost >= t.large_payload_ms else "info",
    )


def large_payload(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or hy.body_bytes < t.large_payload_bytes:
        return None
    return _finding(
        ev,
        t,
        "large-payload",
        f"The response is large ({hy.body_bytes / 1000:.0f} KB)",
        hy.receive_ms,
        "every request",
        [
            Figure("body_bytes", hy.body_bytes, "B"),
            Figure("receive_ms", round(hy.receive_ms, 3), "ms"),
        ],
        ["Paginate, or send only the fields the client uses."],
        severity="warning" if hy.receive_ms >= t.large_payload_ms else "info",
    )


RULES: tuple[Rule, ...] = (
    proxy_env,
    localhost_fallback,
    connection_setup_tax,
    keepalive_refused,
    upstream_no_keepalive,
    proxy_hop_slow,
    db_connect_per_request,
    worker_warmup,
    db_connect_slow,
    small_write_stall,
    server_queueing,
    many_queries,
    redirects,
    uncompressed_text,
    large_payload,
    slow_app,
)


def evaluate(ev: Evidence, t: Thresholds, rules: Sequence[Rule] = RULES) -> tuple[Finding, ...]:
    """Every rule over the evidence, worst first."""
    found: list[Finding] = []
    for rule in rules:
        finding = rule(ev, t, tuple(found))
        if finding is not None:
            found.append(finding)
    return tuple(sorted(found, key=lambda f: f.rank))

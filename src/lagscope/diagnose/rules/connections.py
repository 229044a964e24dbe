"""New connections: ``connection-setup-tax``, ``keepalive-refused`` and
``keepalive-closed-early``, over cold and warm. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from lagscope.diagnose.evidence import (
    ColdWarm,
    Evidence,
    figure,
    outside_app_ms,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.options import MIN_SAMPLES
from lagscope.diagnose.rules.browser import browser_figures
from lagscope.diagnose.rules.common import (
    cheap_records,
    has_timing,
    make_finding,
    median,
    quartiles_apart,
    totals,
)
from lagscope.diagnose.rules.intermittent import (
    describe,
    intermittent_refused,
    intermittent_setup,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord
from lagscope.probe.stats import compare

__all__ = [
    "APP_PHASE",
    "connection_setup_tax",
    "keepalive_closed_early",
    "keepalive_refused",
    "refused_tax",
    "setup_cost_ms",
    "setup_phases",
]


def setup_cost_ms(ev: Evidence) -> tuple[float, bool] | None:
    """Cold minus warm total, without the name lookup and any address fallback (their own
    findings price them): the price of a new connection, and whether it is beyond noise.
    Extra app time on a connection's first request stays in: the server pays it per
    connection (a thread, a database connection), so it is part of that price."""
    cw = ev.coldwarm
    if cw is None or not cw.keep_alive or len(cw.cold) < 2 or len(cw.warm) < 2:
        return None
    # Up to the first byte, then the transfer's extra only if a new connection's is
    # longer: a reused connection's transfer may carry a small-write stall (its own
    # finding), which must not hide a new connection's price.
    timed_cold = [r for r in cw.cold if r.app_ms() is not None]
    timed_warm = [r for r in cw.warm if r.app_ms() is not None]
    if _can_decide(timed_cold, cw.cold) and _can_decide(timed_warm, cw.warm):
        # The app reports its own time: the time outside it and the app's own are compared
        # apart, so a per-request cost inside the app that varies from request to request
        # (a database connect on a busy machine) does not drown a tax paid outside it. The
        # app's extra on a new connection counts only beyond noise.
        outside_ms, outside_apart = _apart(
            [r.total_ms - r.receive_ms - (r.app_ms() or 0.0) for r in timed_cold],
            [r.total_ms - r.receive_ms - (r.app_ms() or 0.0) for r in timed_warm],
        )
        app_ms, app_apart = _apart(
            [r.app_ms() or 0.0 for r in timed_cold], [r.app_ms() or 0.0 for r in timed_warm]
        )
        diff_ms = outside_ms + (max(0.0, app_ms) if app_apart else 0.0)
        significant = outside_apart or app_apart
    else:
        diff_ms, significant = _apart(
            [r.total_ms - r.receive_ms for r in cw.cold],
            [r.total_ms - r.receive_ms for r in cw.warm],
        )
    receive_extra = max(
        0.0, median([r.receive_ms for r in cw.cold]) - median([r.receive_ms for r in cw.warm])
    )
    cold_fallback = median(
        [sum(a.ms for a in r.attempts if a.outcome != "connected") for r in cw.cold]
    )
    cold_resolve = median([r.resolve_ms or 0.0 for r in cw.cold])
    return diff_ms + receive_extra - cold_fallback - cold_resolve, significant


def _can_decide(timed: Sequence[RequestRecord], series: Sequence[RequestRecord]) -> bool:
    """Whether the records of a series that carry the app's time can tell a difference from
    noise as well as the whole series can: all of it, or enough for a 95 % interval of the
    median. A server may time only some responses, or report a time that some fast ones
    contradict (dropped as impossible); two records left of ten decide nothing, and the
    whole series, app time included, then judges, as for a server that reports none."""
    return len(timed) >= 2 and (len(timed) == len(series) or len(timed) >= MIN_SAMPLES)


def _apart(higher: Sequence[float], lower: Sequence[float]) -> tuple[float, bool]:
    """The difference of the medians, and whether it is beyond noise: the medians'
    intervals apart, or (a stack slow on every request, where a slow run gets the fewest
    samples and one load spike spans an interval of 6) the middle halves of the two series
    apart."""
    high, low = summary_of(higher), summary_of(lower)
    assert high is not None and low is not None
    cmp = compare("total", high, low)
    return cmp.diff_ms, cmp.significant or quartiles_apart(higher, lower)


# The phase of a new connection's extra time that the app's own Server-Timing shows.
APP_PHASE = "the app's own time on a connection's first request"


def setup_phases(cw: ColdWarm) -> list[tuple[str, float]]:
    """Where a new connection's extra time was measured, phase by phase (cold minus warm):
    the TCP connect, TLS, before the first byte (outside the app, and inside it when the
    app reports its time), and the transfer."""

    def med(values: Iterable[float | None]) -> float:
        return median([v for v in values if v is not None])

    connect = med(
        (r.connect_ms or 0.0) - sum(a.ms for a in r.attempts if a.outcome != "connected")
        for r in cw.cold
    )
    tls = med(r.tls_ms for r in cw.cold)
    wait = med(r.wait_ms for r in cw.cold) - med(r.wait_ms for r in cw.warm)
    app = 0.0
    if has_timing(cw.cold) and has_timing(cw.warm):
        app = med(r.app_ms() for r in cw.cold) - med(r.app_ms() for r in cw.warm)
    transfer = med(r.send_ms + r.receive_ms for r in cw.cold) - med(
        r.send_ms + r.receive_ms for r in cw.warm
    )
    return [
        ("the TCP connect", connect),
        ("the TLS handshake", tls),
        ("before the first byte, outside the app", wait - app),
        (APP_PHASE, app),
        ("the transfer", transfer),
    ]


_WHY = {
    "the TCP connect": "a connect-level filter (a firewall or security product that "
    "holds the handshake)",
    "the TLS handshake": "TLS set-up (certificate checks, inspection of the handshake)",
    "before the first byte, outside the app": "stream inspection, a user-space filter or "
    "proxy that sets up per connection, or a cost the server pays before the app runs",
    APP_PHASE: "the server sets something up "
    "per connection inside the app (a thread, a database connection)",
    "the transfer": "inspection of the response stream",
}


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
            return _intermittent_tax(ev, t, cw)
        phases = setup_phases(cw)
        where, where_ms = max(phases, key=lambda p: p[1])
        return make_finding(
            ev,
            t,
            "connection-setup-tax",
            "Every new connection pays a setup tax; reused connections do not",
            cost,
            "first request per connection",
            [
                figure("cold_total_ms", summary_of(totals(cw.cold))),
                figure("warm_total_ms", summary_of(totals(cw.warm))),
                Figure("phase", where),
                *(
                    Figure(f"new_connection_extra_in {name}", round(ms, 3), "ms")
                    for name, ms in phases
                ),
                *browser_figures(ev),
            ],
            _TAX_FIX,
            f"The first request on a new connection costs {cost:.0f} ms more than one on a "
            f"reused connection (name lookup and address fallback not counted), most of it "
            f"in {where} ({where_ms:.0f} ms): {_WHY[where]}. Security software that "
            "inspects new connections has this signature.",
        )
    # Keep-alive refused: every request is a new connection, so there is no reused one to
    # compare with. The app's own account shows the tax as time outside the app; without
    # it, the experiments on fresh connections separate it (or nothing does).
    refused = refused_tax(ev, t)
    if refused is None:
        return _intermittent_tax(ev, t, cw)
    cost, how, evidence = refused
    return make_finding(
        ev,
        t,
        "connection-setup-tax",
        "Every request pays a new-connection tax (the server does not keep connections)",
        cost,
        "every request",
        [*evidence, *browser_figures(ev)],
        _TAX_FIX,
        "The server closes every connection, so every request opens a new one, and each "
        f"waits {cost:.0f} ms before the first response byte that is not the app's: {how}",
    )


def _intermittent_tax(ev: Evidence, t: Thresholds, cw: ColdWarm) -> Finding | None:
    """Only some new connections pay: the typical one's median misses them."""
    found = intermittent_setup(cw, t) if cw.keep_alive else intermittent_refused(cw, t)
    if found is None:
        return None
    than = "a reused one" if cw.keep_alive else "most (the server closes every connection)"
    phases = setup_phases(replace(cw, cold=found.taxed))
    where, where_ms = max(phases, key=lambda p: p[1])
    return make_finding(
        ev,
        t,
        "connection-setup-tax",
        "Some new connections pay a setup tax; reused connections do not"
        if cw.keep_alive
        else "Some new connections pay a setup tax (the server does not keep connections)",
        found.extra_ms,
        "first request per connection",
        [
            Figure("taxed_connections", len(found.taxed)),
            Figure("new_connections", found.connections),
            Figure("mean_extra_per_new_connection_ms", round(found.mean_extra_ms, 3), "ms"),
            figure("taxed_cold_total_ms", summary_of(totals(found.taxed))),
            figure("warm_total_ms", summary_of(totals(cw.warm))),
            Figure("phase", where),
            *(Figure(f"new_connection_extra_in {name}", round(ms, 3), "ms") for name, ms in phases),
            *browser_figures(ev),
        ],
        _TAX_FIX,
        f"{describe(found, than)}, most of it in {where} ({where_ms:.0f} ms): {_WHY[where]}. "
        "The typical new connection pays nothing, so a page load pays it when one of its "
        "connections is picked: security software that inspects some connections (or every "
        "k-th one) has this signature.",
    )


def refused_tax(ev: Evidence, t: Thresholds) -> tuple[float, str, list[Figure]] | None:
    """A server that closes every connection: the per-connection tax in its time to first
    byte, the sentence that says how it was separated, and the evidence."""
    cw = ev.coldwarm
    if cw is None or cw.keep_alive:
        return None
    records = cw.cold + cw.warm
    outside = summary_of(outside_app_ms(r) for r in records)
    if outside is not None:
        if outside.p50_ms - t.proxy_floor_ms < t.setup_tax_ms:
            return None
        return (
            outside.p50_ms,
            "the app's Server-Timing accounts for the rest.",
            [
                figure("outside_app_ms", outside),
                figure("app_ms", summary_of(r.app_ms() for r in records)),
            ],
        )
    split = ev.setup_split
    wait = summary_of(r.wait_ms for r in records)
    if split is None or wait is None:
        return None
    idle = summary_of(r.wait_ms for r in split.idle)
    cheap = summary_of(r.wait_ms for r in cheap_records(ev, reused=False))
    evidence = [
        figure("wait_ms", wait),
        figure(f"wait_after_first_byte_and_{split.idle_ms:.0f}_ms_idle_ms", idle),
        figure(f"cheap_request_wait_ms ({split.cheap_path})", cheap),
    ]
    if idle is not None:
        absorbed = wait.p50_ms - idle.p50_ms
        # Beyond noise, or most of the wait gone (a loaded machine's stray slow sample
        # widens an interval of 6, not a median that halves).
        clear = (
            compare("wait", wait, idle).significant
            or absorbed >= t.setup_absorbed_share * wait.p50_ms
        )
        if absorbed >= t.setup_tax_ms and clear:
            return (
                absorbed,
                f"a connection that sent its request's first byte and then stayed idle for "
                f"{split.idle_ms:.0f} ms waited {idle.p50_ms:.0f} ms instead of "
                f"{wait.p50_ms:.0f} ms once the request was complete, so {absorbed:.0f} ms "
                "is paid for setting up the connection or for its first bytes, not by the "
                "app (which needs the whole request).",
                evidence,
            )
    if cheap is not None and cheap.p50_ms - t.proxy_floor_ms >= t.setup_tax_ms:
        return (
            min(cheap.p50_ms, wait.p50_ms),
            f"a request for a page that does not exist ({split.cheap_path}) waits "
            f"{cheap.p50_ms:.0f} ms on a fresh connection too, so that much is not this "
            "page's work. Idle time after the first byte did not absorb it: it is paid "
            "once the request is complete, per connection or per request (the server "
            "closes every connection, so the two cannot be told apart).",
            evidence,
        )
    return None


def keepalive_refused(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or cw.keep_alive:
        return None
    records = cw.cold + cw.warm
    connect = summary_of(r.connect_ms for r in records)
    outside = summary_of(outside_app_ms(r) for r in records)
    # What keep-alive would save: the connect, and the tax a new connection pays.
    tax = refused_tax(ev, t)
    some = intermittent_refused(cw, t) if tax is None else None
    cost = (connect.p50_ms if connect else 0.0) + (
        max(0.0, tax[0] - t.proxy_floor_ms)
        if tax is not None
        else some.mean_extra_ms
        if some is not None
        else 0.0
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
    return make_finding(
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


def keepalive_closed_early(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    """The server keeps connections, but closes kept-alive ones early: silently (no
    ``Connection: close``: an idle timeout shorter than clients keep connections, or a
    request limit), so the next request on such a connection finds it closed and a client
    retries it on a new one (only when the request is idempotent); or with ``Connection:
    close`` after a few responses (a request limit). Either way the next request pays a new
    connection's setup."""
    closes = ev.silent_closes
    limited = ev.closed_after
    idle_close = ev.idle_closed_after_s
    cw = ev.coldwarm
    if not (closes or limited or idle_close is not None) or (cw is not None and not cw.keep_alive):
        return None  # nothing, or every response closes it: keepalive-refused says that
    carried = sorted({n for n, _ in closes if n > 0} | set(limited))
    idle = [s for n, s in closes if n > 0] + ([idle_close] if idle_close is not None else [])
    setup = setup_cost_ms(ev)
    cost = max(0.0, setup[0]) if setup is not None else None
    after = (
        f"after {carried[0]} request(s)"
        if len(carried) == 1
        else f"after {carried[0]}-{carried[-1]} requests"
        if carried
        else f"after {max(idle):.1f} s idle"
        if idle
        else "while idle"
    )
    times = len(closes) + len(limited) + (1 if idle_close is not None else 0)
    how = "with Connection: close" if limited and not (closes or idle) else "silently"
    price = (
        f"paying the connection setup ({cost:.0f} ms here: cold minus warm)"
        if cost is not None
        else "paying the connection setup"
    )
    parts = []
    if idle_close is not None:
        parts.append(
            f"A kept-alive connection left idle was closed by the server after {idle_close:.1f} s "
            "without Connection: close. Browsers keep an idle connection 300 s, so a user's "
            f"next request after a pause opens a new connection, {price}, and one sent as the "
            "close crosses it is lost (a browser retries only idempotent requests)."
        )
    if closes:
        parts.append(
            "Kept-alive connections were closed without Connection: close; the next request "
            f"on each found it closed and was retried on a new connection, {price} (a "
            "browser retries only idempotent requests: a POST fails)."
        )
    if limited:
        parts.append(
            "Kept-alive connections were closed with Connection: close after a few responses "
            f"(a request limit); the next request opened a new connection, {price}."
        )
    detail = " ".join(parts)
    return make_finding(
        ev,
        t,
        "keepalive-closed-early",
        f"The server closes kept-alive connections early ({how}, {after}, "
        f"{times} time(s) in this run)",
        cost,
        "first request per connection",
        [
            Figure("silent_closes", len(closes)),
            Figure("closes_with_connection_close", len(limited)),
            Figure("requests_before_close", ", ".join(map(str, carried)) or None),
            Figure("idle_before_close_s", max(idle) if idle else None, "s"),
            Figure("new_connection_setup_ms", None if cost is None else round(cost, 3), "ms"),
        ],
        [
            "Keep idle connections open longer than clients do (browsers keep them 300 s; "
            "`lagscope serve` sets waitress's channel_timeout to 310 s; uvicorn "
            "--timeout-keep-alive, gunicorn --keep-alive) and lift any per-connection request "
            "limit (nginx keepalive_requests).",
            "When the server must close, send Connection: close on the last response, so a "
            "client opens a new connection instead of losing a request on the closed one.",
        ],
        detail,
        severity="warning",
    )

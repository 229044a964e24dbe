"""New connections: ``connection-setup-tax`` and ``keepalive-refused``, over cold and warm. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    ColdWarm,
    Evidence,
    figure,
    outside_app_ms,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    has_timing,
    make_finding,
    median,
    totals,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.stats import compare

__all__ = ["connection_setup_tax", "keepalive_refused", "setup_cost_ms"]


def setup_cost_ms(ev: Evidence) -> tuple[float, bool] | None:
    """Cold minus warm total (without any address fallback and any extra app time): the
    price of a new connection, and whether it is beyond noise."""
    cw = ev.coldwarm
    if cw is None or not cw.keep_alive or len(cw.cold) < 2 or len(cw.warm) < 2:
        return None
    cold = summary_of(totals(cw.cold))
    warm = summary_of(totals(cw.warm))
    assert cold is not None and warm is not None
    cmp = compare("total", cold, warm)
    cold_fallback = median(
        [sum(a.ms for a in r.attempts if a.outcome != "connected") for r in cw.cold]
    )
    app_extra = 0.0
    if has_timing(cw.cold) and has_timing(cw.warm):
        cold_app = summary_of(r.app_ms() for r in cw.cold)
        warm_app = summary_of(r.app_ms() for r in cw.warm)
        if cold_app is not None and warm_app is not None:
            app_extra = max(0.0, cold_app.p50_ms - warm_app.p50_ms)
    return cmp.diff_ms - cold_fallback - app_extra, cmp.significant


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
        cold = summary_of(totals(cw.cold))
        warm = summary_of(totals(cw.warm))
        return make_finding(
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
    return make_finding(
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

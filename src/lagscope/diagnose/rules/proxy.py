"""The reverse-proxy hop: ``upstream-no-keepalive`` and ``proxy-hop-slow``. Pure.

From the app's own connection marks (Server-Timing ``conn``) and the ``--direct`` series.
"""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    ColdWarm,
    Evidence,
    figure,
    metric_desc,
    metric_ms,
    outside_app_ms,
    share,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    make_finding,
    median,
    totals,
)
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.stats import compare

__all__ = ["proxy_hop_slow", "upstream_no_keepalive"]


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
    if (
        len(seen) >= t.min_steady_requests
        and share([d == "new" for d in seen]) >= t.upstream_new_share
    ):
        outside = summary_of(outside_app_ms(r) for r in reused)
        queue = summary_of(metric_ms(r, "queue") for r in reused)
        hop = _direct_hop(ev)
        cost = hop[0] if hop is not None else (outside.p50_ms if outside else 0.0)
        return make_finding(
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
        and hop_ms >= t.proxy_setup_share * direct_setup
    ):
        return make_finding(
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
    return make_finding(
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
    return median(totals(cw.cold)) - median(totals(cw.warm))


def _direct_hop(ev: Evidence) -> tuple[float, bool] | None:
    """Warm through the proxy minus warm straight to the app, and whether beyond noise."""
    cw, direct = ev.coldwarm, ev.direct
    if cw is None or direct is None or not cw.warm or not direct.warm:
        return None
    via = summary_of(totals(cw.warm))
    straight = summary_of(totals(direct.warm))
    assert via is not None and straight is not None
    cmp = compare("total", via, straight)
    return cmp.diff_ms, cmp.significant

"""Time no known cause claims: ``outside-app-every-request`` and ``unexplained-time``. Pure.

``outside-app-every-request`` is time before the first byte that the app's own
Server-Timing does not account for, on reused connections too: something between the
client and the app holds every response. ``unexplained-time`` runs last and names, phase by
phase, what is left above ``unexplained_ms`` that no earlier finding claims, so no
millisecond of the cold and warm budgets goes without a finding that says where it was
measured, even when the cause has no name yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import Evidence, figure, metric_ms, outside_app_ms, summary_of
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import cheap_records, has_timing, make_finding, median
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["outside_app_every_request", "unexplained_time"]

# Findings that claim time before the first byte outside the app on reused connections.
_HOP_FINDINGS = ("upstream-no-keepalive", "proxy-hop-slow")


def outside_app_every_request(
    ev: Evidence, t: Thresholds, found: Sequence[Finding]
) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or not cw.keep_alive or any(f.id in _HOP_FINDINGS for f in found):
        return None
    warm = [r for r in cw.warm if r.reused and r.app_ms() is not None]
    if len(warm) < t.min_warm_requests:
        return _without_timing(ev, t)
    outside = summary_of(outside_app_ms(r) for r in warm)
    assert outside is not None
    # A queue the proxy reports is waiting for a worker, not time outside the server.
    queue = median([metric_ms(r, "queue") or 0.0 for r in warm])
    cost = outside.p50_ms - queue
    if cost - t.proxy_floor_ms < t.outside_app_ms or outside.ci_low_ms - queue < t.proxy_floor_ms:
        return None
    # A small-write stall read late (a loaded client) lands in the wait: no more outside
    # time than the stall's own is the stall's.
    stall = next((f for f in found if f.id == "small-write-stall"), None)
    if stall is not None and cost <= (stall.cost_ms or 0.0) * (1 + t.delayed_ack_tolerance):
        return None
    cold = [r for r in cw.cold if r.app_ms() is not None]
    client_total = summary_of(r.total_ms for r in warm)
    app_total = summary_of(r.app_ms() for r in warm)
    app_ms = app_total.p50_ms if app_total is not None else 0.0
    command = ev.command or f"lagscope diagnose {ev.url}"
    return make_finding(
        ev,
        t,
        "outside-app-every-request",
        f"Every response waits {cost:.0f} ms outside the app, reused connections too",
        cost,
        "every request",
        [
            figure("warm_client_total_ms", client_total),
            figure("warm_server_timing_total_ms", app_total),
            figure("warm_outside_app_ms", outside),
            figure("cold_outside_app_ms", summary_of(outside_app_ms(r) for r in cold)),
            Figure("warm_queue_ms", round(queue, 3), "ms"),
        ],
        [
            "Something between the client and the app holds every response: software that "
            "inspects each response (antivirus web protection, a DLP agent) or a slow local "
            "proxy. Ask IT for an exclusion for the app's process and loopback traffic.",
            "If a proxy sits in front, rerun with `--direct URL-of-the-app` to see whether "
            "the time is in the proxy hop.",
        ],
        f"On reused connections the client waited {outside.p50_ms:.0f} ms for the first "
        f"byte beyond the app's own Server-Timing total ({app_ms:.1f} ms), and new "
        "connections the same or more: keep-alive does not help, the time is paid per "
        "request, not per connection.",
        confirm=f"{command} --direct URL-of-the-app",
    )


def _without_timing(ev: Evidence, t: Thresholds) -> Finding | None:
    """No Server-Timing: a request for a missing page on a reused connection waits as long
    as this page, so the wait is not this page's work but something every request pays."""
    cw, split = ev.coldwarm, ev.setup_split
    if cw is None or split is None:
        return None
    trusted = cheap_records(ev, reused=True)
    cheap = summary_of(r.wait_ms for r in trusted)
    wait = summary_of(r.wait_ms for r in cw.warm if r.reused)
    if cheap is None or wait is None or len(trusted) < t.min_steady_requests:
        return None
    cost = min(cheap.p50_ms, wait.p50_ms)
    if cost - t.proxy_floor_ms < t.outside_app_ms or cheap.ci_low_ms < t.proxy_floor_ms:
        return None
    command = ev.command or f"lagscope diagnose {ev.url}"
    return make_finding(
        ev,
        t,
        "outside-app-every-request",
        f"Every response waits {cost:.0f} ms that is not this page's work, reused connections too",
        cost,
        "every request",
        [
            figure("warm_wait_ms", wait),
            figure(f"cheap_request_reused_wait_ms ({split.cheap_path})", cheap),
            Figure("cheap_request_status", split.cheap_reused[-1].status),
        ],
        [
            "Something between the client and the app holds every response: software that "
            "inspects each response (antivirus web protection, a DLP agent) or a slow local "
            "proxy. Ask IT for an exclusion for the app's process and loopback traffic.",
            "If a proxy sits in front, rerun with `--direct URL-of-the-app` to see whether "
            "the time is in the proxy hop; middleware that runs on every path has this "
            "signature too (add lagscope's Server-Timing middleware to tell them apart).",
        ],
        f"On a reused connection a request for a page that does not exist "
        f"({split.cheap_path}) waited {cheap.p50_ms:.0f} ms for its first byte, this page "
        f"{wait.p50_ms:.0f} ms: that much is paid by every request before or after the "
        "app's view, not by the page. The app sends no Server-Timing to split it further.",
        confirm=f"{command} --direct URL-of-the-app",
    )


def _claimed(found: Sequence[Finding], ids: Sequence[str]) -> float:
    return sum(f.cost_ms or 0.0 for f in found if f.id in ids and f.severity != "info")


def unexplained_time(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    """The largest phase of a warm request left unclaimed above ``unexplained_ms``."""
    cw = ev.coldwarm
    if cw is None or not cw.warm:
        return None
    warm = [r for r in cw.warm if r.reused] if cw.keep_alive else list(cw.warm)
    if len(warm) < t.min_warm_requests:
        return None
    left: list[tuple[str, float, str]] = []
    # The transfer: the body's arrival after the head, beyond what a stall or size explains.
    receive = median([r.receive_ms for r in warm])
    receive -= _claimed(found, ("small-write-stall", "large-payload", "uncompressed-text"))
    left.append(("the transfer (receiving the response)", receive, "warm_receive_ms"))
    if not has_timing(warm):
        # Without the app's account, time before the first byte is the server's, claimed
        # by slow-app from slow_app_ms on; below that, by what the experiments separated.
        wait = median([r.wait_ms for r in warm])
        wait -= _claimed(
            found,
            (
                "connection-setup-tax",
                "upstream-no-keepalive",
                "proxy-hop-slow",
                "slow-app",
                "db-connect-per-request",
                "outside-app-every-request",
            ),
        )
        # On a kept-alive connection the wait is the server's own time (slow-app claims it
        # from slow_app_ms on; outside-app-every-request what a missing page waits too).
        # On a server that closes every connection it may hide a per-connection cost:
        # unless a missing page answers fast (so the wait is the page's own work), what
        # the experiments did not separate is named here, in full.
        fresh = [r.wait_ms for r in cheap_records(ev, reused=False)]
        page_work = bool(fresh) and median(fresh) < t.setup_tax_ms
        if not cw.keep_alive and not page_work:
            left.append(("before the first byte, on every request", wait, "wait_ms"))
    name, ms, fig = max(left, key=lambda x: x[1])
    if ms < t.unexplained_ms:
        return None
    return make_finding(
        ev,
        t,
        "unexplained-time",
        f"{ms:.0f} ms per request in {name} that no finding explains",
        ms,
        "every request",
        [
            figure(
                fig,
                summary_of(r.receive_ms if fig == "warm_receive_ms" else r.wait_ms for r in warm),
            )
        ],
        [
            "Rerun with Server-Timing from the app (lagscope's middleware) and with "
            "`--direct URL-of-the-app` behind a proxy: each splits this phase further.",
        ],
        f"Every request spends {ms:.0f} ms in {name}, and nothing measured here says why: "
        "the cause has no name yet, but this is where the time goes.",
    )

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
from lagscope.diagnose.rules.transfer import HeldTransfer, held_transfer
from lagscope.diagnose.thresholds import Thresholds

__all__ = [
    "HELD_FIGURE",
    "TRANSFER_PHASE",
    "held_transfer_ms",
    "outside_app_every_request",
    "unexplained_time",
]

# The figure of ``outside-app-every-request`` that says how much of the transfer it claims.
HELD_FIGURE = "held_in_transfer_ms"
# Findings that claim time before the first byte outside the app on reused connections.
_HOP_FINDINGS = ("upstream-no-keepalive", "proxy-hop-slow")


def outside_app_every_request(
    ev: Evidence, t: Thresholds, found: Sequence[Finding]
) -> Finding | None:
    cw = ev.coldwarm
    if cw is None or not cw.keep_alive or any(f.id in _HOP_FINDINGS for f in found):
        return None
    stall = next((f for f in found if f.id == "small-write-stall"), None)
    stall_ms = (stall.cost_ms or 0.0) if stall is not None else 0.0
    held = held_transfer([r for r in cw.warm if r.reused], t, ev.loopback, stall_ms)
    warm = [r for r in cw.warm if r.reused and r.app_ms() is not None]
    if len(warm) < t.min_warm_requests:
        found_wait = _without_timing(ev, t)
        if found_wait is None and held is not None:
            return _in_the_transfer(ev, t, held, 0.0)
        return found_wait
    outside = summary_of(outside_app_ms(r) for r in warm)
    assert outside is not None
    # A queue the proxy reports is waiting for a worker, not time outside the server.
    queue = median([metric_ms(r, "queue") or 0.0 for r in warm])
    cost = outside.p50_ms - queue
    if cost - t.proxy_floor_ms < t.outside_app_ms or outside.ci_low_ms - queue < t.proxy_floor_ms:
        # The first byte is not held beyond noise; the body may be.
        if held is None:
            return None
        wait_ms = cost if outside.ci_low_ms - queue >= t.proxy_floor_ms else 0.0
        return _in_the_transfer(ev, t, held, max(0.0, wait_ms))
    # A small-write stall read late (a loaded client) lands in the wait: no more outside
    # time than the stall's own is the stall's.
    if stall is not None and cost <= stall_ms * (1 + t.delayed_ack_tolerance):
        return None
    cold = [r for r in cw.cold if r.app_ms() is not None]
    client_total = summary_of(r.total_ms for r in warm)
    app_total = summary_of(r.app_ms() for r in warm)
    app_ms = app_total.p50_ms if app_total is not None else 0.0
    command = ev.command or f"lagscope diagnose {ev.url}"
    held_ms = held.held_ms if held is not None else 0.0
    return make_finding(
        ev,
        t,
        "outside-app-every-request",
        f"Every response waits {cost:.0f} ms outside the app, reused connections too",
        cost + held_ms,
        "every request",
        [
            Figure("phase", "before the first byte, outside the app"),
            figure("warm_client_total_ms", client_total),
            figure("warm_server_timing_total_ms", app_total),
            figure("warm_outside_app_ms", outside),
            figure("cold_outside_app_ms", summary_of(outside_app_ms(r) for r in cold)),
            Figure("warm_queue_ms", round(queue, 3), "ms"),
            *([Figure(HELD_FIGURE, round(held_ms, 3), "ms")] if held_ms else []),
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
        "request, not per connection."
        + (f" The body is held {held_ms:.0f} ms more on its way." if held_ms else ""),
        confirm=f"{command} --direct URL-of-the-app",
    )


# The phase a held body's time was measured in (a finding's "phase" figure).
TRANSFER_PHASE = "the transfer (receiving the response body)"


def _in_the_transfer(ev: Evidence, t: Thresholds, held: HeldTransfer, wait_ms: float) -> Finding:
    """Every response's body held on its way, reused connections too: inspection of the
    response stream, in proportion to its size. ``wait_ms``: what the first byte waited
    outside the app on top (the first chunk's share of it)."""
    cw = ev.coldwarm
    assert cw is not None
    warm = [r for r in cw.warm if r.reused]
    cost = held.held_ms + wait_ms
    command = ev.command or f"lagscope diagnose {ev.url}"
    return make_finding(
        ev,
        t,
        "outside-app-every-request",
        f"Every response's body is held {held.held_ms:.0f} ms on its way, reused connections too",
        cost,
        "every request",
        [
            Figure("phase", TRANSFER_PHASE),
            figure("warm_receive_ms", summary_of(r.receive_ms for r in warm)),
            Figure("body_bytes", round(held.body_bytes), "B"),
            Figure("arrival_rate_mb_s", round(held.rate_mb_s, 3), "MB/s"),
            Figure("size_at_loopback_speed_ms", round(held.size_ms, 3), "ms"),
            Figure(HELD_FIGURE, round(held.held_ms, 3), "ms"),
            Figure("outside_app_before_first_byte_ms", round(wait_ms, 3), "ms"),
        ],
        [
            "Something between the client and the app holds every response body on its way: "
            "software that inspects each response (antivirus web protection, a DLP agent) "
            "scans in proportion to its size. Ask IT for an exclusion for the app's process "
            "and loopback traffic.",
            "Send less per response (paginate, only the fields the client uses): the "
            "inspection costs in proportion to the bytes.",
        ],
        f"The {held.body_bytes / 1000:.0f} KB body, sized by the server before it was sent, "
        f"arrived at {held.rate_mb_s:.0f} MB/s on reused connections, where loopback carries "
        f"it at {t.loopback_transfer_mb_s:g} MB/s or more ({held.size_ms:.0f} ms): "
        f"{held.held_ms:.0f} ms of every response is held on its way"
        + (f", and {wait_ms:.0f} ms more before its first byte" if wait_ms else "")
        + ". Keep-alive does not help: the time is paid per response, in proportion to its size.",
        confirm=f"{command} --direct URL-of-the-app",
    )


def held_transfer_ms(found: Sequence[Finding]) -> float:
    """What ``outside-app-every-request`` claims of the transfer (0 when it claims none)."""
    for f in found:
        if f.id == "outside-app-every-request" and f.severity != "info":
            for fig in f.evidence:
                if fig.name == HELD_FIGURE and isinstance(fig.value, (int, float)):
                    return float(fig.value)
    return 0.0


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
    receive -= held_transfer_ms(found)
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

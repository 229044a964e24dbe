"""Nagle + delayed ACK: ``small-write-stall`` on reused connections. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    figure,
    outside_app_ms,
    share,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    has_timing,
    lower_quartile,
    make_finding,
    median,
)
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["small_write_stall"]


def small_write_stall(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    cw = ev.coldwarm
    if cw is None:
        return None
    # Back to back first, as a browser fetches a page's assets: with pauses between
    # requests the peer acknowledges at once and the stall hides; then the paced series.
    series = (
        ("back-to-back", [r for r in cw.back_to_back if r.reused]),
        ("warm", [r for r in cw.warm if r.reused]),
    )
    for label, warm in series:
        if len(warm) < t.min_warm_requests:
            continue
        if median([float(r.body_bytes) for r in warm]) >= t.stall_max_body_bytes:
            continue  # full segments: Nagle holds none, the client acknowledges at once
        for timer in (t.delayed_ack_linux_ms, t.delayed_ack_windows_ms):
            low, high = timer * (1 - t.delayed_ack_tolerance), timer * (1 + t.delayed_ack_tolerance)
            for phase in ("receive", "wait"):
                values = [r.receive_ms if phase == "receive" else r.wait_ms for r in warm]
                if phase == "wait":
                    # A stall in waiting shows as reused connections slower than new ones.
                    base = median([r.wait_ms for r in cw.cold]) if cw.cold else 0.0
                    values = [v - base for v in values]
                inside = share([low <= v <= high for v in values])
                if inside < t.stall_share:
                    continue
                if phase == "wait" and has_timing(warm):
                    # The app's own time explains a wait; only time outside it can be a stall.
                    outside = [outside_app_ms(r) or 0.0 for r in warm]
                    if share([low <= v <= high for v in outside]) < t.stall_share:
                        continue
                # The price is end to end, what the client waits: a stalled request's send
                # to last byte against one that did not stall. A late read of the head under
                # load moves part of a stall from receiving into waiting, never out of the
                # exchange, and load only ever adds to it: so the lower quartile of the
                # stalled exchanges is the timer's price. The baseline is a new connection's
                # send and receive (it acknowledges at once); its wait is a reused one's
                # when the stall is in the receive (a new connection may pay a setup tax
                # before its first byte), a new connection's when the stall is the wait.
                stalled = sorted(
                    r.send_ms + r.wait_ms + r.receive_ms
                    for r, v in zip(warm, values, strict=True)
                    if low <= v <= high
                )
                cold_wait = median([r.wait_ms for r in cw.cold]) if cw.cold else 0.0
                base_wait = cold_wait
                if phase == "receive":
                    reused_wait = median([r.wait_ms for r in warm])
                    base_wait = min(cold_wait, reused_wait) if cw.cold else reused_wait
                baseline = base_wait + (
                    median([r.send_ms + r.receive_ms for r in cw.cold]) if cw.cold else 0.0
                )
                cost = lower_quartile(stalled) - baseline
                gaps = summary_of(r.receive_ms - (r.head_ms or 0.0) for r in warm)
                return make_finding(
                    ev,
                    t,
                    "small-write-stall",
                    f"Reused connections stall ~{timer:g} ms (Nagle + delayed ACK)",
                    cost,
                    "every request",
                    [
                        figure(f"{label}_{phase}_ms", summary_of(values)),
                        Figure("series", label),
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
                    f"{inside:.0%} of requests on a reused connection ({label}) spent "
                    f"~{timer:g} ms in "
                    f"{phase}, the delayed-ACK timer: the server's second small write waited for "
                    "an ACK the client was delaying.",
                )
    return None

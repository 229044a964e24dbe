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
        if len(warm) < 4:
            continue
        for timer in t.delayed_ack_timers_ms:
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
                cold_values = [r.receive_ms if phase == "receive" else 0.0 for r in cw.cold]
                # Load only ever adds to a timer's delay, so the lower quartile of the stalls is
                # the timer's price, the median the timer plus this machine's noise.
                stalls = sorted(v for v in values if low <= v <= high)
                cost = stalls[len(stalls) // 4] - (
                    median(cold_values) if phase == "receive" and cold_values else 0.0
                )
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

"""A per-connection tax that only some new connections pay: the cold series' slow minority.
Pure.

A median compares a typical new connection with a reused one; when one new connection in
three pays (a security product that inspects some connections, or every k-th one), the
typical one pays nothing and the median says so. What still tells the tax from a busy
machine's noise: several new connections slower than every reused one by the same amount,
give or take a factor of ``intermittent_cluster_ratio`` (load spikes vary far more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lagscope.diagnose.evidence import ColdWarm
from lagscope.diagnose.rules.common import iqr_ms, median
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["Intermittent", "describe", "intermittent_refused", "intermittent_setup"]


@dataclass(frozen=True)
class Intermittent:
    """The new connections that paid, what each paid beyond a reused one (p50), and what
    that comes to per new connection on average."""

    taxed: tuple[RequestRecord, ...]
    connections: int  # new connections measured
    extra_ms: float
    mean_extra_ms: float


def _before_body_ms(r: RequestRecord) -> float:
    """Up to the first byte, without the name lookup and failed addresses (their own
    findings price them) and without the app's own time when it reports it."""
    failed = sum(a.ms for a in r.attempts if a.outcome != "connected")
    return r.total_ms - r.receive_ms - failed - (r.resolve_ms or 0.0) - (r.app_ms() or 0.0)


def intermittent_setup(cw: ColdWarm, t: Thresholds) -> Intermittent | None:
    """The slow minority of ``cw.cold`` against the reused connections (keep-alive), or None
    when there is none."""
    if not cw.keep_alive or len(cw.warm) < t.min_warm_requests or not cw.cold:
        return None
    warm = [_before_body_ms(r) for r in cw.warm]
    base = median(warm)
    margin = max(t.intermittent_tax_ms, t.intermittent_spread_factor * iqr_ms(warm, 0.0))
    # Slower than every reused connection: the slowness is tied to new connections.
    cut = max(max(warm), base + margin)
    return _slow_minority(cw.cold, base, cut, t, t.intermittent_min_connections)


def intermittent_refused(cw: ColdWarm, t: Thresholds) -> Intermittent | None:
    """A server that closes every connection: each request is a new connection, and a slow
    minority of them pays what the majority does not (compared with the majority, there is
    no reused connection). With the app's Server-Timing, only time outside the app counts."""
    records = cw.cold + cw.warm
    if cw.keep_alive or len(records) < t.min_warm_requests:
        return None
    values = [_before_body_ms(r) for r in records]
    base = median(values)  # the majority's, while the slow ones are fewer than half
    fast = [v for v in values if v <= base + t.setup_tax_ms]
    cut = base + max(t.intermittent_tax_ms, t.intermittent_spread_factor * iqr_ms(fast, 0.0))
    if 2 * sum(v > cut for v in values) >= len(values):
        return None  # not a minority: the median is no baseline (refused_tax prices it)
    # No reused connection vouches for the pattern: twice the evidence.
    return _slow_minority(records, base, cut, t, 2 * t.intermittent_min_connections)


def _slow_minority(
    records: Sequence[RequestRecord], base: float, cut: float, t: Thresholds, least: int
) -> Intermittent | None:
    slow = [r for r in records if _before_body_ms(r) > cut]
    if not slow:
        return None
    # The tax is what most of the slow ones paid, give or take the cluster ratio; a load
    # spike among them (far more or far less) is left out, not allowed to hide the pattern.
    typical = median([_before_body_ms(r) - base for r in slow])
    taxed = [
        r
        for r in slow
        if typical / t.intermittent_cluster_ratio
        <= _before_body_ms(r) - base
        <= typical * t.intermittent_cluster_ratio
    ]
    if len(taxed) < max(least, t.intermittent_min_share * len(records)) or len(taxed) * 2 < len(
        slow
    ):
        return None
    extras = [_before_body_ms(r) - base for r in taxed]
    return Intermittent(
        taxed=tuple(taxed),
        connections=len(records),
        extra_ms=median(extras),
        mean_extra_ms=sum(extras) / len(records),
    )


def describe(found: Intermittent, than: str) -> str:
    """What was seen, for a finding's detail; ``than``: what they were compared with."""
    return (
        f"{len(found.taxed)} of {found.connections} new connections paid {found.extra_ms:.0f} ms "
        f"(p50) more than {than}, the others nothing: {found.mean_extra_ms:.0f} ms per new "
        "connection on average"
    )

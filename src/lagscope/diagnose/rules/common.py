"""What every rule shares: how a finding is built and priced, and the medians it reads. Pure."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from lagscope.diagnose.evidence import Evidence
from lagscope.diagnose.model import Affects, Figure, Finding, Severity
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = [
    "cheap_records",
    "has_timing",
    "iqr_ms",
    "lower_quartile",
    "make_finding",
    "median",
    "quartiles_apart",
    "severity_for",
    "steady_records",
    "totals",
    "upper_quartile",
]


def severity_for(cost_ms: float | None, t: Thresholds, base: Severity = "warning") -> Severity:
    if base == "warning" and cost_ms is not None and cost_ms >= t.critical_ms:
        return "critical"
    return base


def make_finding(
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
        severity=severity or severity_for(cost_ms, t),
        cost_ms=None if cost_ms is None else round(max(0.0, cost_ms), 3),
        affects=affects,
        evidence=tuple(evidence),
        fix=tuple(fix),
        confirm=confirm or ev.command or f"lagscope diagnose {ev.url}",
        detail=detail,
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def has_timing(records: Sequence[RequestRecord]) -> bool:
    return any(r.app_ms() is not None for r in records)


def steady_records(ev: Evidence) -> tuple[RequestRecord, ...]:
    """Requests after warm-up: the cold and warm series."""
    cw = ev.coldwarm
    return () if cw is None else cw.cold + cw.warm


def cheap_records(ev: Evidence, reused: bool) -> list[RequestRecord]:
    """The cheap requests for a missing page (fresh ones, or those on a reused
    connection), only when the server answered them differently from the page: an app
    that answers every path alike did the page's work for them too, so they prove
    nothing."""
    split, cw = ev.setup_split, ev.coldwarm
    if split is None or cw is None:
        return []
    page = {r.status for r in cw.cold + cw.warm}
    records = [r for r in split.cheap_reused if r.reused] if reused else list(split.cheap)
    if not records or {r.status for r in records} & page:
        return []
    return records


def totals(records: Sequence[RequestRecord]) -> list[float]:
    return [r.total_ms for r in records]


# Quartiles cut the ordered values in quarters; fewer values than quarters have no
# quartiles apart from the extremes themselves.
QUARTERS = 4
_UPPER = QUARTERS - 1  # the upper quartile ends the third quarter


def lower_quartile(ordered: Sequence[float]) -> float:
    """The lower quartile of sorted ``ordered`` (not empty), by rank."""
    return ordered[len(ordered) // QUARTERS]


def upper_quartile(ordered: Sequence[float]) -> float:
    """The upper quartile of sorted ``ordered`` (not empty), by rank."""
    return ordered[(_UPPER * len(ordered)) // QUARTERS]


def quartiles_apart(higher: Sequence[float], lower: Sequence[float]) -> bool:
    """Whether the lower quartile of ``higher`` is above the upper quartile of ``lower``: the
    middle halves of the two series do not overlap. On a busy machine one stray slow sample
    widens the 95 % interval of a median of 6 to the whole series; it does not move the
    middle half of either series, so this still tells a real difference from noise."""
    if len(higher) < QUARTERS or len(lower) < QUARTERS:
        return False
    return lower_quartile(sorted(higher)) > upper_quartile(sorted(lower))


def iqr_ms(values: Sequence[float], floor_ms: float) -> float:
    """The interquartile range of ``values``, at least ``floor_ms`` (the noise floor)."""
    if len(values) < QUARTERS:
        return floor_ms
    ordered = sorted(values)
    return max(floor_ms, upper_quartile(ordered) - lower_quartile(ordered))

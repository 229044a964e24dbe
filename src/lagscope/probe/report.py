"""Turning request records into a :class:`ProbeReport`: statistics, comparison, verdict. Pure.

The verdict is the one sentence a user reads first. It only claims a cold-versus-warm
difference when the median intervals say it is beyond noise, and it names the phase where
most of that difference sits, because the phase tells the causes apart (connect: a
connect-level filter or the IPv6 fallback; wait: stream inspection or a per-connection
cost in the server; receive: Nagle and delayed ACK).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lagscope import redact
from lagscope.probe.model import (
    PHASES,
    SCHEMA,
    KeepAlive,
    MetricSummary,
    ProbeReport,
    RequestRecord,
    Series,
)
from lagscope.probe.stats import CI_LEVEL, Comparison, Summary, compare, summarize

__all__ = ["RunFacts", "build_report", "summarize_series"]

SERIES_ORDER = ("cold", "warm_first", "warm")


@dataclass(frozen=True)
class RunFacts:
    """What the runner knows besides the records."""

    tool_version: str
    url: str
    method: str
    started_at: str
    duration_ms: float
    host: str
    resolve_source: str
    addresses: tuple[str, ...]
    keep_alive: KeepAlive
    truncated: bool
    warnings: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]


def _metric_summaries(records: Sequence[RequestRecord]) -> tuple[MetricSummary, ...]:
    order: list[str] = []
    durs: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    descs: dict[str, str | None] = {}
    for r in records:
        # A metric repeated within one response (several db spans, say) is one sample:
        # its durations add up, and it counts once for the response.
        per_response: dict[str, float | None] = {}
        for m in r.server_timing:
            if m.name not in counts:
                order.append(m.name)
                counts[m.name] = 0
                durs[m.name] = []
                descs[m.name] = m.desc
            if m.dur_ms is None:
                per_response.setdefault(m.name, None)
            else:
                per_response[m.name] = (per_response.get(m.name) or 0.0) + m.dur_ms
        for name, dur in per_response.items():
            counts[name] += 1
            if dur is not None:
                durs[name].append(dur)
    return tuple(
        MetricSummary(
            name=n,
            desc=descs[n],
            count=counts[n],
            dur=summarize(durs[n]) if durs[n] else None,
        )
        for n in order
    )


def summarize_series(name: str, records: Sequence[RequestRecord]) -> Series:
    phases: list[tuple[str, Summary]] = []
    for phase in PHASES:
        values = [v for r in records if (v := r.phase(phase)) is not None]
        if values:
            phases.append((phase, summarize(values)))
    outside = [r.wait_ms - app for r in records if (app := r.app_ms()) is not None]
    return Series(
        name=name,
        requests=tuple(records),
        phases=tuple(phases),
        server_timing=_metric_summaries(records),
        outside_app=summarize(outside) if outside else None,
    )


def _comparisons(cold: Series | None, warm: Series | None) -> tuple[Comparison, ...]:
    if cold is None or warm is None:
        return ()
    out = []
    for phase in PHASES:
        c = cold.stats(phase)
        w = warm.stats(phase)
        if c is not None and w is not None:
            out.append(compare(phase, c, w))
    return tuple(out)


def _setup_ms(cold: Series) -> float:
    """Median time a cold request spends opening its connection (resolve+connect+tls)."""
    return sum(s.p50_ms for p in ("resolve", "connect", "tls") if (s := cold.stats(p)))


def _verdict(
    cold: Series | None, warm: Series | None, comps: tuple[Comparison, ...], keep_alive: KeepAlive
) -> str:
    if not keep_alive.supported:
        return (
            "The server closed the connection after every response "
            f"({keep_alive.reason}): every request pays for a new connection. "
            "Make it keep connections alive (Content-Length on every response)."
        )
    if cold is None or warm is None:
        return "Only one series was measured: no cold-versus-warm comparison."
    total = next((c for c in comps if c.phase == "total"), None)
    if total is None:
        return "No comparable totals."
    cold_total, warm_total = cold.stats("total"), warm.stats("total")
    if (
        cold_total is not None
        and warm_total is not None
        and min(cold_total.ci_level, warm_total.ci_level) < CI_LEVEL
    ):
        return (
            f"A new connection costs {total.diff_ms:+.2f} ms against a reused one, but with "
            f"{cold_total.n} cold and {warm_total.n} warm requests that cannot be told from "
            "noise: measure at least 6 of each."
        )
    if not total.significant:
        return (
            f"A new connection costs {total.diff_ms:+.2f} ms against a reused one: within noise "
            f"(the median difference lies in {total.diff_low_ms:+.2f}.."
            f"{total.diff_high_ms:+.2f} ms)."
        )
    if total.diff_ms < 0:
        return (
            f"Reused-connection requests are slower than new ones by {-total.diff_ms:.2f} ms "
            "(beyond noise): look for a server that degrades on long-lived connections."
        )
    # Where does the difference live? Connection setup exists only on cold requests.
    shares = {"connection setup": _setup_ms(cold)}
    for c in comps:
        if c.phase in ("send", "wait", "receive") and c.significant:
            shares[c.phase] = c.diff_ms
    where, amount = max(shares.items(), key=lambda kv: kv[1])
    return (
        f"A new connection costs {total.diff_ms:.1f} ms more than a reused one "
        f"(95 % interval {total.diff_low_ms:.1f}..{total.diff_high_ms:.1f} ms); "
        f"most of it ({amount:.1f} ms) is in {where}."
    )


def build_report(records: Sequence[RequestRecord], facts: RunFacts) -> ProbeReport:
    by_series = {name: [r for r in records if r.series == name] for name in SERIES_ORDER}
    series = tuple(summarize_series(n, rs) for n, rs in by_series.items() if rs)
    cold = next((s for s in series if s.name == "cold"), None)
    warm = next((s for s in series if s.name == "warm"), None)
    comps = _comparisons(cold, warm)
    return ProbeReport(
        schema=SCHEMA,
        tool_version=facts.tool_version,
        url=redact.url(facts.url),
        method=facts.method,
        started_at=facts.started_at,
        duration_ms=facts.duration_ms,
        host=facts.host,
        resolve_source=facts.resolve_source,
        addresses=facts.addresses,
        series=series,
        comparisons=comps,
        keep_alive=facts.keep_alive,
        verdict=_verdict(cold, warm, comps, facts.keep_alive),
        truncated=facts.truncated,
        warnings=facts.warnings,
        options=facts.options,
    )

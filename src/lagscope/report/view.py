"""What the HTML report shows, as one frozen view built from a report model. Pure.

Probe reports and diagnose reports differ in what they know (a verdict against a list of
findings, one run against a ladder of rungs); the page does not. Each report kind has one
``*_view`` function here that maps it onto :class:`ReportView`, in the page's order:
headline, costs, budget, waterfall, distributions, sequence, Server-Timing, rungs,
environment, command line. Every number in the view is the report's own number.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lagscope.browser.model import BrowserRun
from lagscope.diagnose.model import DiagnoseReport, Figure
from lagscope.diagnose.profiling import spot_line
from lagscope.instrument.profile import ProfileFrame
from lagscope.probe.model import (
    PHASES,
    RESOLVE_SOURCES,
    MetricSummary,
    ProbeReport,
    RequestRecord,
)
from lagscope.probe.report import summarize_series
from lagscope.probe.stats import Summary
from lagscope.report.charts import BAR_PHASES

__all__ = [
    "CostRow",
    "FindingView",
    "ReportView",
    "RunView",
    "TableView",
    "diagnose_view",
    "probe_view",
    "view_of",
]


@dataclass(frozen=True)
class FindingView:
    id: str
    title: str
    severity: str
    cost_ms: float | None  # None: not measurable from where the run stood
    affects: str
    evidence: tuple[str, ...]
    fix: tuple[str, ...]
    confirm: str
    detail: str = ""
    # What a profiled request showed (slow-app, many-queries): one line, the hotspots as
    # text, and the frames the icicle chart draws.
    profile_note: str = ""
    hotspots: tuple[str, ...] = ()
    frames: tuple[ProfileFrame, ...] = ()


@dataclass(frozen=True)
class CostRow:
    """One bar of the costs chart: a finding's cost, or a phase's cold-minus-warm."""

    label: str
    ms: float
    low_ms: float | None
    high_ms: float | None
    significant: bool


@dataclass(frozen=True)
class TableView:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class RunView:
    """The requests of one measured run (a probe, or one rung of a diagnosis)."""

    label: str | None
    records: tuple[RequestRecord, ...]

    def connection_id(self, r: RequestRecord) -> str:
        return f"c{r.connection}" if self.label is None else f"{self.label}:c{r.connection}"


@dataclass(frozen=True)
class ReportView:
    kind: str  # "probe" | "diagnose"
    title: str
    started_at: str
    headline: str
    headline_cost_ms: float | None
    headline_fix: str
    findings: tuple[FindingView, ...]
    costs_title: str
    costs: tuple[CostRow, ...]
    budget: tuple[tuple[str, tuple[tuple[str, float], ...], str], ...]
    budget_note: str
    budget_parts: tuple[TableView, ...]  # sub-items (parts of the app's time), as tables
    runs: tuple[RunView, ...]
    distributions: tuple[tuple[str, tuple[float, ...], Summary], ...]
    server_timing: tuple[tuple[str, tuple[MetricSummary, ...]], ...]
    outside_app: tuple[tuple[str, Summary], ...]
    rungs: tuple[TableView, ...]
    environment: tuple[tuple[str, str], ...]
    warnings: tuple[str, ...]
    command_line: str
    version: str
    schema: str
    # The worst finding's id, and the words around the headline cost.
    headline_id: str = ""
    headline_cost_before: str = "a new connection costs"
    headline_cost_after: str = "more than a reused one (median total)"
    # A real browser's loads (diagnose --browser), drawn as their own waterfalls.
    browser: BrowserRun | None = None

    def tagged_records(self) -> list[tuple[str, RequestRecord]]:
        """Every request with its connection id, in the order the run made them."""
        return [(run.connection_id(r), r) for run in self.runs for r in run.records]


def _fmt(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:,.2f}"


def _ci(s: Summary) -> str:
    return f"{_fmt(s.ci_low_ms)} – {_fmt(s.ci_high_ms)} ({s.ci_level * 100:.1f} %)"


def phase_table(
    title: str, series: Sequence[tuple[str, dict[str, Summary]]], caption: str = ""
) -> TableView:
    """Per-phase statistics of each series: the text equivalent of the budget bar."""
    rows = []
    for name, stats in series:
        for phase in PHASES:
            s = stats.get(phase)
            if s is None:
                continue
            rows.append(
                (
                    name,
                    phase,
                    str(s.n),
                    _fmt(s.p50_ms),
                    _ci(s),
                    _fmt(s.p90_ms),
                    _fmt(s.p99_ms),
                    _fmt(s.max_ms),
                )
            )
    return TableView(
        title=title,
        columns=("series", "phase", "n", "p50 ms", "95 % CI of p50 ms", "p90", "p99", "max"),
        rows=tuple(rows),
        caption=caption,
    )


def _option_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _budget_row(label: str, stats: dict[str, Summary]) -> tuple[str, tuple[tuple[str, float], ...]]:
    return label, tuple((p, stats[p].p50_ms) for p in BAR_PHASES if p in stats)


def probe_view(report: ProbeReport) -> ReportView:
    cold = report.get_series("cold")
    warm = report.get_series("warm")
    stats = {s.name: dict(s.phases) for s in report.series}
    total = next((c for c in report.comparisons if c.phase == "total"), None)
    costs = tuple(
        CostRow(
            label=c.phase,
            ms=c.diff_ms,
            low_ms=c.diff_low_ms,
            high_ms=c.diff_high_ms,
            significant=c.significant,
        )
        for c in report.comparisons
    )
    budget = []
    for name in ("cold", "warm"):
        if name in stats:
            label, parts = _budget_row(name, stats[name])
            t = stats[name].get("total")
            note = "" if t is None else f"p50 total {_fmt(t.p50_ms)} ms"
            budget.append((label, parts, note))
    distributions = tuple(
        (s.name, tuple(r.total_ms for r in s.requests), st)
        for s in (cold, warm)
        if s is not None and (st := s.stats("total")) is not None
    )
    ka = report.keep_alive
    env: list[tuple[str, str]] = [
        ("URL", f"{report.method} {report.url}"),
        ("started", report.started_at),
        ("duration", f"{_fmt(report.duration_ms)} ms"),
        (
            "resolve",
            f"{report.host} → {', '.join(report.addresses) or '–'} "
            f"({RESOLVE_SOURCES.get(report.resolve_source, 'DNS')})",
        ),
        (
            "keep-alive",
            "supported"
            if ka.supported
            else f"refused: {ka.reason}"
            + (f"; {ka.reconnects} reconnects" if ka.reconnects else ""),
        ),
        ("truncated", "yes (--max-time)" if report.truncated else "no"),
    ]
    env += [(f"option {k}", _option_text(v)) for k, v in report.options]
    rung = phase_table(
        "Probe: phases per series",
        [(s.name, dict(s.phases)) for s in report.series],
        caption="Medians with distribution-free 95 % intervals (the level reached is shown).",
    )
    comparisons = TableView(
        title="Cold minus warm",
        columns=("phase", "difference ms", "interval ms", "beyond noise"),
        rows=tuple(
            (
                c.phase,
                f"{c.diff_ms:+,.2f}",
                f"{c.diff_low_ms:+,.2f} … {c.diff_high_ms:+,.2f}",
                "yes" if c.significant else "no",
            )
            for c in report.comparisons
        ),
    )
    if not ka.supported:
        fix = "Make the server keep connections alive: Content-Length on every response."
    elif total is not None and total.significant and total.diff_ms > 0:
        fix = (
            "Reuse connections at every hop: client keep-alive, upstream keepalive in the "
            "proxy, persistent or pooled database connections opened before the first request."
        )
    else:
        fix = ""
    return ReportView(
        kind="probe",
        title=f"{report.method} {report.url}",
        started_at=report.started_at,
        headline=report.verdict,
        headline_cost_ms=total.diff_ms if total is not None and total.significant else None,
        headline_fix=fix,
        findings=(),
        costs_title="Cold minus warm, per phase (median difference, interval shaded)",
        costs=costs,
        budget=tuple(budget),
        budget_note="Median of each phase; medians of parts do not add up exactly to the "
        "median total.",
        budget_parts=(),
        runs=(RunView(label=None, records=tuple(r for s in report.series for r in s.requests)),),
        distributions=distributions,
        server_timing=tuple((s.name, s.server_timing) for s in report.series if s.server_timing),
        outside_app=tuple(
            (s.name, s.outside_app) for s in report.series if s.outside_app is not None
        ),
        rungs=(rung, comparisons),
        environment=tuple(env),
        warnings=report.warnings,
        command_line=shlex.join(report.command_line) if report.command_line else "",
        version=report.tool_version,
        schema=report.schema,
    )


# --- diagnose reports ------------------------------------------------------------------------


def _value(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _figure_text(f: Figure) -> str:
    text = f"{f.name}: {_value(f.value)}{' ' + f.unit if f.unit and f.value is not None else ''}"
    if f.low is not None and f.high is not None:
        text += f" (95 % interval {_fmt(f.low)} – {_fmt(f.high)})"
    return text


def _figure_row(f: Figure) -> tuple[str, ...]:
    interval = "" if f.low is None or f.high is None else f"{_fmt(f.low)} – {_fmt(f.high)}"
    return (f.name, _value(f.value), f.unit, interval)


def _product(name: str, state: str, up_to_date: bool | None) -> str:
    fresh = "" if up_to_date is None else (", up to date" if up_to_date else ", outdated")
    return f"{name}: {state}{fresh}"


def diagnose_view(report: DiagnoseReport) -> ReportView:
    findings = tuple(
        FindingView(
            id=f.id,
            title=f.title,
            severity=f.severity,
            cost_ms=f.cost_ms,
            affects=f.affects,
            evidence=tuple(_figure_text(e) for e in f.evidence),
            fix=f.fix,
            confirm=f.confirm,
            detail=f.detail,
            profile_note=f.profile.note if f.profile else "",
            hotspots=tuple(spot_line(h) for h in f.profile.hotspots) if f.profile else (),
            frames=f.profile.frames if f.profile else (),
        )
        for f in sorted(report.findings, key=lambda f: f.rank)
    )
    budget = []
    parts = []
    for kind in ("cold", "warm"):
        b = report.budget(kind)
        if b is None:
            continue
        top = tuple((i.name, i.ms) for i in b.items if i.within is None)
        budget.append((f"typical {kind} request", top, ""))
        if all(i.within is None for i in b.items):
            continue  # the budget table above already lists every item
        parts.append(
            TableView(
                title=f"Budget of a typical {kind} request with its parts, ms",
                columns=("item", "part of", "ms"),
                rows=(
                    *((i.name, i.within or "", _fmt(i.ms)) for i in b.items),
                    ("total", "", _fmt(b.total_ms)),
                ),
            )
        )
    requests = report.requests
    series = [
        summarize_series(name, [r for r in requests if r.series == name])
        for name in ("cold", "warm_first", "warm")
        if any(r.series == name for r in requests)
    ]
    distributions = tuple(
        (s.name, tuple(r.total_ms for r in s.requests), st)
        for s in series
        if s.name != "warm_first" and (st := s.stats("total")) is not None
    )
    rungs = tuple(
        TableView(
            title=f"{r.title} ({r.status}, {_fmt(r.duration_ms)} ms)",
            columns=("figure", "value", "unit", "95 % interval"),
            rows=tuple(_figure_row(f) for f in r.figures),
            caption=" ".join(r.notes),
        )
        for r in report.rungs
    )
    e = report.environment
    env: list[tuple[str, str]] = [
        ("URL", report.url),
        ("final URL", report.final_url),
        ("started", report.started_at),
        ("duration", f"{_fmt(report.duration_ms)} ms"),
        ("OS", e.os),
        ("Python", e.python),
        ("proxy variables", ", ".join(f"{k}={v}" for k, v in e.proxy_vars) or "none"),
        ("proxy applies to the URL", "yes" if e.proxy_applies else "no"),
        (
            f"security products ({e.security_source})",
            ", ".join(_product(p.name, p.state, p.up_to_date) for p in e.security_products)
            or "none reported",
        ),
        ("truncated", "yes (--max-time)" if report.truncated else "no"),
    ]
    env += [(f"option {k}", _option_text(v)) for k, v in report.options]
    problems = [f for f in findings if f.severity != "info"]
    headline = (
        problems[0].title
        if problems
        else "No problem found: nothing here costs a request more than the thresholds allow."
    )
    return ReportView(
        kind="diagnose",
        title=report.url,
        started_at=report.started_at,
        headline=headline,
        headline_cost_ms=problems[0].cost_ms if problems else None,
        headline_fix=problems[0].fix[0] if problems and problems[0].fix else "",
        findings=findings,
        costs_title="Findings",
        costs=(),
        budget=tuple(budget),
        budget_note="Where the time of a typical request goes; the items add up to its total.",
        budget_parts=tuple(parts),
        runs=(RunView(label=None, records=requests),),
        distributions=distributions,
        server_timing=tuple((s.name, s.server_timing) for s in series if s.server_timing),
        outside_app=tuple((s.name, s.outside_app) for s in series if s.outside_app is not None),
        rungs=rungs,
        environment=tuple(env),
        warnings=report.warnings,
        command_line=shlex.join(report.command),
        version=report.tool_version,
        schema=report.schema,
        headline_id=problems[0].id if problems else "",
        headline_cost_before="costs",
        headline_cost_after=f"per request affected ({problems[0].affects})" if problems else "",
        browser=report.browser,
    )


def view_of(report: ProbeReport | DiagnoseReport) -> ReportView:
    """The page's view of any report kind."""
    if isinstance(report, DiagnoseReport):
        return diagnose_view(report)
    return probe_view(report)

"""The report model of ``lagscope demo`` and its ``lagscope.demo/1`` JSON form. Pure.

A :class:`DemoReport` holds one :class:`VersionResult` per version of the reference app
(before, hand-tuned, lagscope). Each result keeps its raw request samples and the figures
computed from them (:func:`summarize`), the ground truth from the fault proxy and from
PostgreSQL, the findings diagnose made (diagnose's own :class:`Finding`, the one finding
type) and the version's diagnose report as diagnose's own JSON (so a reader can render it
with diagnose's renderers). ``to_dict`` / ``from_dict`` round-trip exactly.

Files written before the demo kept whole findings hold each as one line's worth (id,
severity, cost, who it affects, the fix as one string); they load as findings with no
evidence, the fix as one step and the id as the title (:func:`finding_from_line`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

from lagscope.diagnose.model import (
    Affects,
    Finding,
    Severity,
    finding_from_dict,
    finding_to_dict,
)
from lagscope.probe.stats import percentile

__all__ = [
    "FIRST_REQUESTS",
    "HTML_PAGE",
    "JSON_PAGE",
    "SCHEMA",
    "BrowserPage",
    "DemoReport",
    "EditFigures",
    "Sample",
    "VersionResult",
    "finding_from_line",
    "report_from_dict",
    "report_to_dict",
    "summarize",
]

SCHEMA = "lagscope.demo/1"

# "The first 10 requests": what a person feels on a fresh visit.
FIRST_REQUESTS = 10

# The reference app's two pages, as a browser opens them.
HTML_PAGE = "/items/"
JSON_PAGE = "/api/items/"


@dataclass(frozen=True)
class Sample:
    """One request as the demo's browser-like client saw it."""

    index: int  # 1-based, in the order the requests were sent
    path: str
    connection: int  # the client's connection number (1-based)
    new_connection: bool  # the request opened its connection (connect included in ms)
    elapsed_ms: float  # connect (if new) + send + wait + body read
    status: int
    app_ms: float | None = None  # Server-Timing total
    db_connects: int = 0  # Server-Timing dbconn: connections the app opened for it
    phase: str = "visit"  # "visit" (the first requests) or "warm"


@dataclass(frozen=True)
class BrowserPage:
    """One page of a version as a real browser loaded it (lagscope.browser): cold in a
    fresh context, then reloaded."""

    path: str  # HTML_PAGE or JSON_PAGE
    cold_ms: float  # navigation start to the end of the load event
    reload_ms: float
    requests: int  # the cold load's, document included
    connections: int  # the cold load opened
    reload_connections: int  # the reload opened
    setup_added_ms: float  # what the cold load's new connections added to it
    protocol: str | None = None  # what the cold load spoke: "h2", "http/1.1"


@dataclass(frozen=True)
class EditFigures:
    """The first page after a code edit (the demo edits a template the version renders):
    "before" and "hand-tuned" restart their server, as a user must; "lagscope" runs
    ``serve --reload`` and switches by itself. Measured on the client's keep-alive
    connection, through the tax: a request that finds it closed reconnects, as a browser
    does, and pays what a new connection costs."""

    how: str  # "restart" or "reload"
    ready_ms: float  # from the edit until the new code could answer (restart or switch)
    warm_ms: float  # the same page on the same connection just before the edit
    first_ms: float  # the first page after it, reconnect included when the server closed
    new_connections: int  # connections that first page opened (0: the kept one answered)
    new_code: bool  # the page showed the edit


@dataclass(frozen=True)
class VersionResult:
    name: str  # before / hand-tuned / lagscope
    title: str  # one line: what this version runs
    settings: tuple[tuple[str, str], ...]
    url: str  # what a browser opens (behind the tax)
    startup_ms: float
    samples: tuple[Sample, ...]
    # Figures from the samples (see summarize()).
    first_request_ms: float = 0.0
    first10_total_ms: float = 0.0
    first10_max_ms: float = 0.0
    warm_p50_ms: float = 0.0
    warm_p90_ms: float = 0.0
    requests_with_db_connect: int = 0
    # Ground truth from the fault proxy, counted from the moment the version was ready
    # until the visit ended (diagnose's own traffic is not in these).
    http_connections: int = 0
    http_taxed: int = 0
    db_connects_after_start: int | None = None  # None: no database hop (SQLite)
    db_tax_paid_ms: float = 0.0
    # With --nginx: connections nginx opened to the app during the visit (None: no nginx).
    upstream_connections: int | None = None
    # PostgreSQL's own view after the visit (pg_stat_activity, this version's
    # application_name): open backends, and those of them opened during the visit (the
    # connections kept for reuse; one closed after each request is not among them).
    pg_backends: int | None = None
    pg_backends_after_start: int | None = None
    # Wall-clock Unix seconds: the version was ready; the visit ended (the window of the
    # ground-truth figures above).
    ready_at: float = 0.0
    visit_end_at: float = 0.0
    findings: tuple[Finding, ...] = ()
    diagnose: Mapping[str, Any] | None = None
    diagnose_error: str | None = None
    # A real browser's loads of the HTML and the JSON page, after the visit (empty when no
    # browser ran; the report's notes say why).
    browser_pages: tuple[BrowserPage, ...] = ()
    # The first page after a code edit (None: not measured, e.g. --no-edit).
    edit: EditFigures | None = None

    def browser_page(self, path: str) -> BrowserPage | None:
        for page in self.browser_pages:
            if page.path == path:
                return page
        return None


@dataclass(frozen=True)
class DemoReport:
    tax_ms: float
    database: str  # "postgresql" or "sqlite"
    database_source: str  # "throwaway cluster", "--database", "sqlite"
    nginx: bool
    quick: bool
    machine: str
    versions: tuple[VersionResult, ...]
    wall_s: float = 0.0
    notes: tuple[str, ...] = ()
    browser: str | None = None  # the browser that loaded the pages (None: none ran)
    https: bool = False  # "lagscope" served over HTTPS with HTTP/2 (serve --https)
    schema: str = field(default=SCHEMA)

    def version(self, name: str) -> VersionResult:
        for v in self.versions:
            if v.name == name:
                return v
        raise KeyError(name)


def _finite(value: float) -> float:
    return round(value, 3) if math.isfinite(value) else 0.0


def summarize(result: VersionResult, first: int = FIRST_REQUESTS) -> VersionResult:
    """Fill the figures from the samples: first request, the first ``first`` requests
    (total and worst), warm p50/p90 (the "warm" samples), requests that opened a DB
    connection."""
    samples = sorted(result.samples, key=lambda s: s.index)
    head = samples[:first]
    warm = sorted(s.elapsed_ms for s in samples if s.phase == "warm")
    return replace(
        result,
        first_request_ms=_finite(head[0].elapsed_ms) if head else 0.0,
        first10_total_ms=_finite(sum(s.elapsed_ms for s in head)),
        first10_max_ms=_finite(max((s.elapsed_ms for s in head), default=0.0)),
        warm_p50_ms=_finite(percentile(warm, 0.5)) if warm else 0.0,
        warm_p90_ms=_finite(percentile(warm, 0.9)) if warm else 0.0,
        requests_with_db_connect=sum(1 for s in samples if s.db_connects > 0),
    )


# -- JSON ----------------------------------------------------------------------------------


def report_to_dict(report: DemoReport) -> dict[str, Any]:
    data = asdict(report)
    # asdict turns the diagnose mappings into dicts already; tuples become lists in JSON.
    # Findings take diagnose's own form (rounded as diagnose rounds them).
    for version, saved in zip(report.versions, data["versions"], strict=True):
        saved["findings"] = [finding_to_dict(f) for f in version.findings]
    return {"schema": data.pop("schema"), **data}


def _sample(d: Mapping[str, Any]) -> Sample:
    return Sample(**d)


def finding_from_line(d: Mapping[str, Any]) -> Finding:
    """A finding as files written before the demo kept whole findings hold it (``id``,
    ``severity``, ``cost_ms``, ``affects``, ``fix`` as one string): no evidence, the fix as
    one step, the id as the title. Severity and affects are kept as written."""
    fix = str(d["fix"])
    return Finding(
        id=str(d["id"]),
        title=str(d["id"]),
        severity=cast(Severity, d["severity"]),
        cost_ms=d["cost_ms"],
        affects=cast(Affects, d["affects"]),
        evidence=(),
        fix=(fix,) if fix else (),
        confirm="",
    )


def _finding(d: Mapping[str, Any]) -> Finding:
    # Diagnose's form has a title; the one-line form never had one.
    return finding_from_dict(dict(d)) if "title" in d else finding_from_line(d)


def _version(d: Mapping[str, Any]) -> VersionResult:
    data = dict(d)
    data["settings"] = tuple((str(k), str(v)) for k, v in data["settings"])
    data["samples"] = tuple(_sample(s) for s in data["samples"])
    data["findings"] = tuple(_finding(f) for f in data["findings"])
    data["browser_pages"] = tuple(BrowserPage(**p) for p in data.get("browser_pages", ()))
    edit = data.get("edit")
    data["edit"] = EditFigures(**edit) if edit is not None else None
    return VersionResult(**data)


def report_from_dict(data: Mapping[str, Any]) -> DemoReport:
    """The inverse of :func:`report_to_dict`. Raises ValueError on another schema."""
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} report (schema {data.get('schema')!r})")
    fields = dict(data)
    fields["versions"] = tuple(_version(v) for v in fields["versions"])
    fields["notes"] = tuple(fields.get("notes", ()))
    return DemoReport(**fields)


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when the baseline is zero."""
    return value / baseline if baseline > 0 else None


def versions_by_name(versions: Sequence[VersionResult]) -> dict[str, VersionResult]:
    return {v.name: v for v in versions}

"""The diagnose report model: findings, rungs, budgets and environment, as frozen dataclasses.

This is the boundary between measuring and output for ``lagscope diagnose``. The ladder
produces a :class:`DiagnoseReport`; renderers read only it. :func:`to_dict` /
:func:`from_dict` give the versioned JSON form (``schema: "lagscope.report/2"``, published
as lagscope/schemas/report-2.schema.json; ``lagscope.report/1`` files still load), so a
saved report can be rendered again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal, cast, get_args

from lagscope.browser.model import BrowserRun, run_from_dict, run_to_dict
from lagscope.instrument.profile import Hotspot, ProfileFrame
from lagscope.probe.model import RequestRecord, records_from_json, table_from_records

__all__ = [
    "AFFECTS",
    "SCHEMA",
    "SCHEMAS",
    "SEVERITIES",
    "Affects",
    "Budget",
    "BudgetItem",
    "DiagnoseReport",
    "Environment",
    "Figure",
    "Finding",
    "FindingProfile",
    "Rung",
    "RungStatus",
    "SecurityProduct",
    "Severity",
    "finding_from_dict",
    "finding_to_dict",
    "from_dict",
    "to_dict",
]

SCHEMA = "lagscope.report/2"
# Every version this model reads: /1 kept one object per request, /2 a table of columns
# (lagscope.probe.model.table_from_records).
SCHEMAS = ("lagscope.report/1", SCHEMA)

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
Affects = Literal[
    "every request",
    "first request per connection",
    "first request per worker",
    "concurrent requests",
    "every new database connection",
    "nothing measured here",
    "every cold page load",
]
AFFECTS: tuple[Affects, ...] = get_args(Affects)
RungStatus = Literal["ran", "skipped", "failed"]
Value = float | int | str | bool | None


@dataclass(frozen=True)
class Figure:
    """One measured or observed figure, with its 95 % interval when it is a median."""

    name: str
    value: Value
    unit: str = ""
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class FindingProfile:
    """What a profiled request showed inside the app (``slow-app``, ``many-queries``).

    ``note`` is one line: what was profiled, or why no profile could be had (then the rest
    is empty). ``hotspots`` are the app frames holding the time, heaviest first, each with
    the library frames it spends in; ``frames`` the compact profile (parents first) that
    the HTML report draws. Names come from the server: text, never markup.
    """

    note: str
    duration_ms: float | None = None
    hotspots: tuple[Hotspot, ...] = ()
    frames: tuple[ProfileFrame, ...] = ()


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    severity: Severity
    # What it costs each affected request, in ms; None when it cannot be measured from here.
    cost_ms: float | None
    affects: Affects
    evidence: tuple[Figure, ...]
    fix: tuple[str, ...]
    confirm: str
    detail: str = ""
    profile: FindingProfile | None = None

    @property
    def rank(self) -> tuple[int, float]:
        return (SEVERITIES.index(self.severity), -(self.cost_ms or 0.0))


@dataclass(frozen=True)
class Rung:
    """One experiment of the ladder and what it measured, finding or not."""

    name: str
    title: str
    status: RungStatus
    duration_ms: float
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BudgetItem:
    name: str
    ms: float
    # The item this one is a part of ("app" for view, db...); None at the top level.
    within: str | None = None


@dataclass(frozen=True)
class Budget:
    """Where the time of a typical request goes. Top-level items add up to ``total_ms``."""

    kind: Literal["cold", "warm"]
    total_ms: float
    items: tuple[BudgetItem, ...]

    def get(self, name: str) -> float:
        for item in self.items:
            if item.name == name:
                return item.ms
        return 0.0


@dataclass(frozen=True)
class SecurityProduct:
    name: str
    state: Literal["on", "off", "unknown"]
    up_to_date: bool | None = None


@dataclass(frozen=True)
class Environment:
    os: str
    python: str
    # Proxy variables in force (names only, values without credentials).
    proxy_vars: tuple[tuple[str, str], ...]
    # True when a client honouring the variables would send this URL through a proxy.
    proxy_applies: bool
    # How the security products were found ("SecurityCenter2", "process list"), or "unknown".
    security_source: str
    security_products: tuple[SecurityProduct, ...]


@dataclass(frozen=True)
class DiagnoseReport:
    schema: str
    tool_version: str
    url: str
    final_url: str
    command: tuple[str, ...]
    started_at: str
    duration_ms: float
    environment: Environment
    rungs: tuple[Rung, ...]
    findings: tuple[Finding, ...]
    budgets: tuple[Budget, ...]
    requests: tuple[RequestRecord, ...]
    truncated: bool
    warnings: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]
    # What a real browser did loading the URL (diagnose --browser).
    browser: BrowserRun | None = None

    def finding(self, finding_id: str) -> Finding | None:
        for f in self.findings:
            if f.id == finding_id:
                return f
        return None

    def budget(self, kind: str) -> Budget | None:
        for b in self.budgets:
            if b.kind == kind:
                return b
        return None

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Findings at warning or above."""
        return tuple(f for f in self.findings if f.severity != "info")


# --- JSON form --------------------------------------------------------------------------


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _plain(obj: Any) -> Any:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if hasattr(value, "__dataclass_fields__"):
            value = _plain(value)
        elif isinstance(value, tuple):
            value = [_plain(v) if hasattr(v, "__dataclass_fields__") else _round(v) for v in value]
        out[f.name] = _round(value)
    return out


def to_dict(report: DiagnoseReport) -> dict[str, Any]:
    out = {
        "schema": SCHEMA,  # a file read from an older version is saved as this one
        "tool_version": report.tool_version,
        "url": report.url,
        "final_url": report.final_url,
        "command": list(report.command),
        "started_at": report.started_at,
        "duration_ms": _round(report.duration_ms),
        "environment": {
            "os": report.environment.os,
            "python": report.environment.python,
            "proxy_vars": {k: v for k, v in report.environment.proxy_vars},
            "proxy_applies": report.environment.proxy_applies,
            "security_source": report.environment.security_source,
            "security_products": [_plain(p) for p in report.environment.security_products],
        },
        "findings": [finding_to_dict(f) for f in report.findings],
        "rungs": [_plain(r) for r in report.rungs],
        "budgets": [_plain(b) for b in report.budgets],
        "requests": table_from_records(report.requests),
        "truncated": report.truncated,
        "warnings": list(report.warnings),
        "options": dict(report.options),
    }
    if report.browser is not None:
        out["browser"] = run_to_dict(report.browser)
    return out


def _figures(items: list[dict[str, Any]]) -> tuple[Figure, ...]:
    return tuple(Figure(**i) for i in items)


def _profile(data: dict[str, Any] | None) -> FindingProfile | None:
    if data is None:
        return None
    return FindingProfile(
        note=data["note"],
        duration_ms=data["duration_ms"],
        hotspots=tuple(
            Hotspot(**{**h, "spends_in": tuple(h["spends_in"])}) for h in data["hotspots"]
        ),
        frames=tuple(ProfileFrame(**f) for f in data["frames"]),
    )


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A finding's JSON form (``$defs/finding`` of report-2.schema.json); the demo's saved
    file holds the same form."""
    out: dict[str, Any] = _plain(finding)
    return out


def finding_from_dict(f: dict[str, Any]) -> Finding:
    """The inverse of :func:`finding_to_dict` (a schema-valid dict)."""
    return Finding(
        id=f["id"],
        title=f["title"],
        severity=cast(Severity, f["severity"]),
        cost_ms=f["cost_ms"],
        affects=cast(Affects, f["affects"]),
        evidence=_figures(f["evidence"]),
        fix=tuple(f["fix"]),
        confirm=f["confirm"],
        detail=f.get("detail", ""),
        profile=_profile(f.get("profile")),
    )


def from_dict(data: dict[str, Any]) -> DiagnoseReport:
    """Rebuild a report from its JSON form (validated against the schema by the caller)."""
    if data.get("schema") not in SCHEMAS:
        raise ValueError(f"unsupported schema {data.get('schema')!r} (expected {SCHEMA!r})")
    env = data["environment"]
    return DiagnoseReport(
        schema=data["schema"],
        tool_version=data["tool_version"],
        url=data["url"],
        final_url=data["final_url"],
        command=tuple(data["command"]),
        started_at=data["started_at"],
        duration_ms=data["duration_ms"],
        environment=Environment(
            os=env["os"],
            python=env["python"],
            proxy_vars=tuple(env["proxy_vars"].items()),
            proxy_applies=env["proxy_applies"],
            security_source=env["security_source"],
            security_products=tuple(SecurityProduct(**p) for p in env["security_products"]),
        ),
        findings=tuple(finding_from_dict(f) for f in data["findings"]),
        rungs=tuple(
            Rung(
                name=r["name"],
                title=r["title"],
                status=r["status"],
                duration_ms=r["duration_ms"],
                figures=_figures(r["figures"]),
                notes=tuple(r["notes"]),
            )
            for r in data["rungs"]
        ),
        budgets=tuple(
            Budget(
                kind=b["kind"],
                total_ms=b["total_ms"],
                items=tuple(BudgetItem(**i) for i in b["items"]),
            )
            for b in data["budgets"]
        ),
        requests=records_from_json(data["requests"]),
        truncated=data["truncated"],
        warnings=tuple(data["warnings"]),
        options=tuple(data["options"].items()),
        browser=run_from_dict(data["browser"]) if data.get("browser") else None,
    )

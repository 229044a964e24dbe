"""``render(report) -> str`` for ``lagscope db``: text for people, JSON for tools. Pure."""

from __future__ import annotations

import json

from lagscope.console import printable
from lagscope.dbcheck.model import AliasResult, DbReport

__all__ = ["render_json", "render_text"]


def _ms(value: float) -> str:
    if value < 1:
        return f"{value:.3f} ms"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _alias_lines(result: AliasResult, verbosity: int) -> list[str]:
    s = result.settings
    lines = [f"{s.alias}: {s.where()}" + (f" / {s.name}" if s.network and s.name else "")]
    if result.error is not None:
        return [*lines, f"  unreachable: {result.error}"]
    age = "None (forever)" if s.conn_max_age is None else f"{s.conn_max_age:g} s"
    pool = "native pool" if s.pool else "no pool"
    checks = "on" if s.health_checks else "off"
    lines.append(f"  CONN_MAX_AGE {age}, {pool}, CONN_HEALTH_CHECKS {checks}")
    if result.connect is not None:
        c = result.connect
        lines.append(f"  connect   p50 {_ms(c.p50_ms)}, max {_ms(c.max_ms)}")
        if verbosity >= 2:
            lines.append("            " + ", ".join(_ms(v) for v in c.values_ms))
    if result.connect_gss_disabled is not None:
        g = result.connect_gss_disabled
        lines.append(
            f"  connect with gssencmode=disable   p50 {_ms(g.p50_ms)}, max {_ms(g.max_ms)}"
            f" (in force: gssencmode={s.gssencmode})"
        )
    if result.select1 is not None:
        r = result.select1
        lines.append(f"  SELECT 1  p50 {_ms(r.p50_ms)}, max {_ms(r.max_ms)}")
    return lines


def render_text(report: DbReport, verbosity: int = 1) -> str:
    """Per-alias figures (verbosity ≥ 1; every sample at 2), then the findings."""
    lines: list[str] = []
    if verbosity >= 1:
        lines.append(f"{report.samples} connects per alias, each as a request pays it")
        for result in report.aliases:
            lines.extend(_alias_lines(result, verbosity))
        lines.append("")
    if report.findings:
        lines.append("findings:")
        for af in report.findings:
            f = af.finding
            cost = (
                ""
                if f.cost_ms is None
                else f", {f.cost_ms:.1f} ms per {f.affects.removeprefix('every ')}"
            )
            lines.append(f"  [{f.severity}] {f.id} ({af.alias}): {f.title}{cost}")
            if f.detail:
                lines.append(f"      {f.detail}")
            for fix in f.fix:
                lines.append(f"      fix: {fix}")
    elif not report.unreachable:
        lines.append("findings: none")
    # Driver messages and settings are quoted as they are: no control character goes out.
    return "".join(printable(line) + "\n" for line in lines)


def render_json(report: DbReport) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"

"""Renderers of the demo report: ``render(report) -> str``. Pure.

:class:`TextRenderer` prints the closing table (before / hand-tuned / lagscope side by side,
each figure with its ratio to "before"), the findings each version still has, and the
story in a few sentences built from the measured values (:func:`story`).
:class:`JsonRenderer` writes the ``lagscope.demo/1`` form; :func:`load_json` reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lagscope.console import printable
from lagscope.demo.model import (
    FIRST_REQUESTS,
    HTML_PAGE,
    JSON_PAGE,
    DemoReport,
    VersionResult,
    report_from_dict,
    report_to_dict,
)
from lagscope.diagnose.model import Finding
from lagscope.saved import model_from_saved, saved_form

__all__ = [
    "JsonRenderer",
    "TextRenderer",
    "findings_lines",
    "load_json",
    "story",
    "table_cells",
]

_Row = tuple[str, Callable[[VersionResult], "float | int | None"], str]

_ROWS: tuple[_Row, ...] = (
    ("first request", lambda v: v.first_request_ms, "ms"),
    (f"first {FIRST_REQUESTS} requests, total", lambda v: v.first10_total_ms, "ms"),
    (f"slowest of first {FIRST_REQUESTS}", lambda v: v.first10_max_ms, "ms"),
    ("warm p50", lambda v: v.warm_p50_ms, "ms"),
    ("warm p90", lambda v: v.warm_p90_ms, "ms"),
    ("requests that opened a DB conn.", lambda v: v.requests_with_db_connect, ""),
    ("DB connects after start-up", lambda v: v.db_connects_after_start, ""),
    ("  kept open (pg_stat_activity)", lambda v: v.pg_backends_after_start, ""),
    ("new browser connections", lambda v: v.http_connections, ""),
    ("browser: HTML page cold", lambda v: _page(v, HTML_PAGE, "cold_ms"), "ms"),
    ("browser: HTML page reload", lambda v: _page(v, HTML_PAGE, "reload_ms"), "ms"),
    ("  connections opened cold", lambda v: _page(v, HTML_PAGE, "connections"), ""),
    ("browser: JSON page cold", lambda v: _page(v, JSON_PAGE, "cold_ms"), "ms"),
    ("browser: JSON page reload", lambda v: _page(v, JSON_PAGE, "reload_ms"), "ms"),
    ("  connections opened cold", lambda v: _page(v, JSON_PAGE, "connections"), ""),
    ("first page after an edit", lambda v: v.edit.first_ms if v.edit else None, "ms"),
    ("  connections it opened", lambda v: v.edit.new_connections if v.edit else None, ""),
    ("  restart / reload took", lambda v: v.edit.ready_ms if v.edit else None, "ms"),
    ("nginx->app connections", lambda v: v.upstream_connections, ""),
    ("start-up", lambda v: v.startup_ms, "ms"),
)


def _page(v: VersionResult, path: str, figure: str) -> float | int | None:
    page = v.browser_page(path)
    value = getattr(page, figure) if page is not None else None
    return value if isinstance(value, (int, float)) else None


def _cell(value: float | int | None, unit: str, base: float | int | None) -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if isinstance(value, float) else str(value)
    if unit:
        text += f" {unit}"
    if base is not None and unit == "ms":
        text += f" ({value / base:.2f}x)" if base > 0 else ""
    return text


def table_cells(report: DemoReport) -> list[tuple[str, list[str]]]:
    """The side-by-side table: (figure, one cell per version), each cell with its ratio to
    "before"; rows nothing measured (no nginx, no browser) are left out."""
    versions = report.versions
    if not versions:
        return []
    base = versions[0]
    rows: list[tuple[str, list[str]]] = []
    for label, get, unit in _ROWS:
        if all(get(v) is None for v in versions) and (
            label.startswith(
                (
                    "nginx",
                    "browser",
                    "  connections opened",
                    "first page after",
                    "  connections it",
                    "  restart",
                )
            )
        ):
            continue
        cells = []
        for i, v in enumerate(versions):
            ref = get(base) if i > 0 else None
            cells.append(_cell(get(v), unit, ref))
        rows.append((label, cells))
    return rows


def _table(report: DemoReport) -> list[str]:
    rows = table_cells(report)
    if not rows:
        return []
    label_w = max(len(label) for label, _ in rows) + 2
    col_w = 20
    lines = [" " * label_w + "".join(f"{v.name:>{col_w}}" for v in report.versions)]
    for label, cells in rows:
        lines.append(f"{label:<{label_w}}" + "".join(f"{c:>{col_w}}" for c in cells))
    return lines


def findings_lines(report: DemoReport) -> list[str]:
    """One line per finding each version still has (warning or worse), info counted."""
    out: list[str] = []
    for v in report.versions:
        if v.diagnose_error:
            out.append(f"{v.name}: diagnose failed: {v.diagnose_error}")
        elif v.diagnose is None:
            out.append(f"{v.name}: (no diagnose run)")
        else:
            problems = _problems(v)
            info = len(v.findings) - len(problems)
            more = f" (+{info} info)" if info else ""
            if not problems:
                out.append(f"{v.name}: none{more}")
            for i, f in enumerate(problems):
                cost = f", {f.cost_ms:.0f} ms" if f.cost_ms is not None else ""
                tail = more if i == len(problems) - 1 else ""
                out.append(f"{v.name}: {f.id} ({f.severity}{cost}, {f.affects}){tail}")
    return out


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def story(report: DemoReport) -> list[str]:
    """A few sentences telling what happened, each number taken from the report."""
    by = {v.name: v for v in report.versions}
    before, tuned, ours = by.get("before"), by.get("hand-tuned"), by.get("lagscope")
    lines: list[str] = []
    tax = report.tax_ms
    hops_list = ["browser->nginx", "nginx->app"] if report.nginx else ["browser->app"]
    if report.database == "postgresql":
        hops_list.append("app->database")
    hops = (
        ", ".join(hops_list[:-1]) + " and " + hops_list[-1] if len(hops_list) > 1 else hops_list[0]
    )
    if before is not None:
        if tax > 0:
            lines.append(
                f'Every new connection paid {tax:g} ms ({hops}): on "before" the first '
                f"request took {_ms(before.first_request_ms)} and the first {FIRST_REQUESTS} "
                f"{_ms(before.first10_total_ms)}; warm requests still took "
                f"{_ms(before.warm_p50_ms)} at p50."
            )
        else:
            lines.append(
                f'No tax (control run): on "before" the first request took '
                f"{_ms(before.first_request_ms)}, warm p50 {_ms(before.warm_p50_ms)}."
            )
        if before.db_connects_after_start:
            lines.append(
                f'"before" opened {before.db_connects_after_start} database connections for '
                f"{len(before.samples)} requests: one per request (CONN_MAX_AGE=0)."
            )
        if before.upstream_connections:
            lines.append(
                f"The tutorial nginx config opened {before.upstream_connections} connections to "
                f"the app for {len(before.samples)} requests (no upstream keep-alive); "
                + (
                    f"lagscope nginx-config's pool opened {ours.upstream_connections}."
                    if ours is not None and ours.upstream_connections is not None
                    else ""
                )
            )
        if _problems(before):
            lines.append(f'diagnose named it on "before": {_named(_problems(before))}.')
    if tuned is not None and before is not None:
        slow = tuned.requests_with_db_connect
        threads = _threads(tuned)
        per_thread = (
            f" (one per waitress thread: it runs {threads})"
            if slow and threads is not None and slow <= threads
            else ""
        )
        lines.append(
            f"Hand-tuning brought the first {FIRST_REQUESTS} to {_ms(tuned.first10_total_ms)} "
            f"({_ratio(tuned.first10_total_ms, before.first10_total_ms)} of before) and warm "
            f"p50 to {_ms(tuned.warm_p50_ms)}, but {slow} request(s) still opened a database "
            f"connection after start-up{per_thread}."
        )
    lines.extend(_browser_story(report, before, ours))
    if ours is not None and before is not None:
        lines.append(
            f"lagscope serve: first {FIRST_REQUESTS} in {_ms(ours.first10_total_ms)} "
            f"({_ratio(ours.first10_total_ms, before.first10_total_ms)} of before), warm p50 "
            f"{_ms(ours.warm_p50_ms)}, {ours.requests_with_db_connect} request(s) opened a "
            "database connection after start-up."
        )
        if tax > 0 and ours.http_connections:
            lines.append(
                f"What remains is the tax on the {ours.http_connections} connection(s) the "
                "browser opened itself: only fewer new connections (or no tax) remove it."
            )
        if ours.diagnose is not None:
            left = _problems(ours)
            lines.append(
                "diagnose on lagscope: "
                + (f"still {_named(left)}." if left else "nothing left to fix.")
            )
    return lines


def _browser_story(
    report: DemoReport, before: VersionResult | None, ours: VersionResult | None
) -> list[str]:
    """What the browser saw: the HTML page against the JSON one, cold, on "before"."""
    if before is None or report.browser is None:
        return []
    html, data = before.browser_page(HTML_PAGE), before.browser_page(JSON_PAGE)
    if html is None or data is None:
        return []
    line = (
        f'In {report.browser}, "before"\'s HTML page loaded cold in {_ms(html.cold_ms)} over '
        f"{html.connections} connections ({html.requests} requests), the JSON page in "
        f"{_ms(data.cold_ms)} over {data.connections}"
    )
    if report.tax_ms > 0 and html.connections > 1:
        line += (
            ": the document pays one tax, then its static files open more connections side by "
            "side and pay a second"
        )
    line += f"; a reload took {_ms(html.reload_ms)}."
    out = [line]
    mine = ours.browser_page(HTML_PAGE) if ours is not None else None
    if mine is not None and report.https:
        out.append(
            f"On lagscope, served over HTTPS ({mine.protocol or 'protocol unknown'}), the HTML "
            f"page opened {mine.connections} connection(s) and loaded cold in "
            f"{_ms(mine.cold_ms)} ({_ratio(mine.cold_ms, html.cold_ms)} of before), reloaded "
            f"in {_ms(mine.reload_ms)}: over HTTP/2 a browser sends every request down one "
            "connection, so the page pays the tax once."
        )
    elif mine is not None:
        out.append(
            f"On lagscope the HTML page loaded cold in {_ms(mine.cold_ms)} "
            f"({_ratio(mine.cold_ms, html.cold_ms)} of before) and reloaded in "
            f"{_ms(mine.reload_ms)}: the browser's own new connections still pay the tax."
        )
    return out


def _threads(v: VersionResult) -> int | None:
    for key, value in v.settings:
        if key == "waitress":
            for item in value.split(","):
                name, _, number = item.strip().partition("=")
                if name == "threads" and number.isdigit():
                    return int(number)
    return None


def _problems(v: VersionResult) -> list[Finding]:
    return [f for f in v.findings if f.severity != "info"]


def _named(findings: list[Finding]) -> str:
    parts = []
    for f in findings:
        cost = f" ({f.cost_ms:.0f} ms, {f.affects})" if f.cost_ms is not None else ""
        parts.append(f"{f.id}{cost}")
    return ", ".join(parts)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


class TextRenderer:
    def render(self, report: DemoReport) -> str:
        out: list[str] = []
        where = f"{report.database} ({report.database_source})"
        out.append(
            f"lagscope demo: tax {report.tax_ms:g} ms per new connection, database {where}, "
            f"{report.wall_s:.1f} s"
        )
        out.append(f"machine: {report.machine}")
        if report.https:
            out.append('https: "lagscope" served over HTTPS with HTTP/2 (serve --https)')
        out.extend(f"note: {n}" for n in report.notes)
        out.append("")
        out.extend(_table(report))
        out.append("")
        out.append("findings each version still has:")
        out.extend(f"  {line}" for line in findings_lines(report))
        out.append("")
        out.extend(story(report))
        # Diagnose's findings and notes quote servers (or a loaded file): escaped, line by line.
        return "".join(printable(line) + "\n" for line in out)


class JsonRenderer:
    def render(self, report: DemoReport) -> str:
        return json.dumps(saved_form(report_to_dict(report)), indent=2) + "\n"


def load_json(data: Any) -> DemoReport:
    """A report from its parsed JSON form (read by :mod:`lagscope.saved`). Raises ValueError
    with a readable reason."""
    return model_from_saved(data, report_from_dict, "lagscope.demo/1")

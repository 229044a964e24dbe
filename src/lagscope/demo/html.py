"""The demo's HTML page: ``render(report) -> str``. Pure.

One self-contained page. It opens with an SVG chart comparing the three versions on what a
person feels (first request, the first 10, warm p50, and the browser's cold load of the
HTML page when a browser ran; :func:`comparison` lays it out), then the side-by-side table,
the findings and the story, then each version's diagnose report as ``lagscope report`` draws it
(:func:`lagscope.report.html.render`), each in its own sandboxed ``srcdoc`` frame so the
three pages keep their own styles and their own Content-Security-Policy. No scripts, no
requests. Needs the ``report`` extra (jinja2).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from lagscope.console import printable
from lagscope.demo.model import FIRST_REQUESTS, HTML_PAGE, DemoReport, VersionResult
from lagscope.demo.render import findings_lines, story, table_cells

__all__ = ["render"]

# Nothing in the outer page loads anything; frames get their documents inline.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'"

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1d1d1f; background: #fff; }
pre { font: 13px/1.4 ui-monospace, monospace; overflow-x: auto; background: #f6f6f8;
      padding: 1rem; border-radius: 6px; }
iframe { width: 100%; height: 85vh; border: 1px solid #ccc; border-radius: 6px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid #ccc; text-align: right; }
th:first-child, td:first-child { text-align: left; white-space: pre; }
svg.compare { width: 100%; max-width: 760px; height: auto; }
svg.compare text { font: 12px system-ui, sans-serif; fill: currentColor; }
svg.compare .metric { font-weight: 600; }
.v-before { fill: #d84315; } .v-hand-tuned { fill: #6a1b9a; } .v-lagscope { fill: #1565c0; }
@media (prefers-color-scheme: dark) {
  body { color: #e8e8ea; background: #151517; }
  pre { background: #222226; }
}
"""


def _version_section(v: VersionResult) -> str:
    title = f"<h2>{html.escape(v.name)}: {html.escape(v.title)}</h2>"
    if v.diagnose is None:
        why = v.diagnose_error or "diagnose did not run"
        return f"{title}\n<p>No diagnose report ({html.escape(why)}).</p>"
    from lagscope.diagnose.model import from_dict
    from lagscope.report.html import render as render_page

    try:
        diagnosis = from_dict(dict(v.diagnose))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # A saved file's embedded report that diagnose cannot read back: said, not fatal.
        why = " ".join(f"its saved form is not readable: {exc}".split())[:200]
        return f"{title}\n<p>No diagnose report ({html.escape(why)}).</p>"
    page = render_page(diagnosis)
    return (
        f'{title}\n<iframe sandbox title="diagnose report of {html.escape(v.name)}" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
    )


# What the chart compares: (title, figure of a version); a version without the figure has
# no bar (the browser's row when no browser ran).
_METRICS: tuple[tuple[str, Callable[[VersionResult], float | None]], ...] = (
    ("first request", lambda v: v.first_request_ms),
    (f"first {FIRST_REQUESTS} requests, total", lambda v: v.first10_total_ms),
    ("warm p50", lambda v: v.warm_p50_ms),
    (
        "browser: HTML page, cold load",
        lambda v: p.cold_ms if (p := v.browser_page(HTML_PAGE)) is not None else None,
    ),
    ("first page after a code edit", lambda v: v.edit.first_ms if v.edit else None),
)
_WIDTH = 760.0
_LABEL_W = 110.0
_BAR_W = 520.0
_ROW_H = 20.0
_TITLE_H = 22.0


@dataclass(frozen=True)
class ChartBar:
    version: str
    ms: float
    x: float
    y: float
    w: float


@dataclass(frozen=True)
class ChartGroup:
    title: str
    y: float  # of the title's baseline
    bars: tuple[ChartBar, ...]


def comparison(report: DemoReport) -> tuple[tuple[ChartGroup, ...], float]:
    """The chart's layout: one group per figure, one bar per version on that figure's own
    scale (a first 10 in seconds and a warm p50 in ms cannot share one); and its height."""
    groups: list[ChartGroup] = []
    y = 0.0
    for title, get in _METRICS:
        values = [(v.name, get(v)) for v in report.versions]
        shown = [(name, ms) for name, ms in values if ms is not None]
        if not shown:
            continue
        top = max(ms for _, ms in shown) or 1.0
        y += _TITLE_H
        bars = []
        for i, (name, ms) in enumerate(shown):
            bars.append(
                ChartBar(name, ms, _LABEL_W, y + 6 + i * _ROW_H, max(1.0, ms / top * _BAR_W))
            )
        groups.append(ChartGroup(title, y, tuple(bars)))
        y += 6 + len(shown) * _ROW_H + 8
    return tuple(groups), y


def _chart(report: DemoReport) -> str:
    groups, height = comparison(report)
    if not groups:
        return ""
    desc = "; ".join(
        f"{g.title}: " + ", ".join(f"{b.version} {b.ms:.0f} ms" for b in g.bars) for g in groups
    )
    parts = [
        f'<svg class="compare" viewBox="0 0 {_WIDTH:.0f} {height:.0f}" role="img" '
        'aria-labelledby="compare-t compare-d">',
        '<title id="compare-t">The three versions side by side (shorter is better)</title>',
        f'<desc id="compare-d">{html.escape(desc)}</desc>',
    ]
    for g in groups:
        parts.append(f'<text class="metric" x="0" y="{g.y - 6:.1f}">{html.escape(g.title)}</text>')
        for b in g.bars:
            cls = "v-" + "".join(c if c.isalnum() or c == "-" else "-" for c in b.version)
            parts.append(
                f'<g class="bar"><text x="0" y="{b.y + 14:.1f}">{html.escape(b.version)}</text>'
                f'<rect class="{cls}" x="{b.x:.1f}" y="{b.y + 2:.1f}" width="{b.w:.1f}" '
                f'height="{_ROW_H - 5:.1f}"><title>{html.escape(b.version)}: {b.ms:.1f} ms</title>'
                f'</rect><text x="{b.x + b.w + 6:.1f}" y="{b.y + 14:.1f}">{b.ms:,.0f} ms</text></g>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _summary(report: DemoReport) -> str:
    head = "".join(f"<th>{html.escape(v.name)}</th>" for v in report.versions)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
        + "</tr>"
        for label, cells in table_cells(report)
    )
    where = f"{report.database} ({report.database_source})"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    # Findings quote servers (or a loaded file): made printable, then escaped.
    found = "".join(f"<li>{html.escape(printable(line))}</li>" for line in findings_lines(report))
    told = "".join(f"<p>{html.escape(printable(line))}</p>" for line in story(report))
    return (
        f"<p>Tax {report.tax_ms:g} ms per new connection, database {html.escape(where)}, "
        f"{report.wall_s:.1f} s on {html.escape(report.machine)}"
        + (f"; browser {html.escape(report.browser)}" if report.browser else "")
        + "</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>"
        + f"<h2>Findings each version still has</h2><ul>{found}</ul>"
        + f"<h2>What happened</h2>{told}"
    )


def render(report: DemoReport) -> str:
    """The whole page, as a string."""
    sections = "\n".join(_version_section(v) for v in report.versions)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lagscope demo: before / hand-tuned / lagscope</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>lagscope demo</h1>
{_chart(report)}
{_summary(report)}
{sections}
</body>
</html>
"""

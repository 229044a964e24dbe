"""The self-contained HTML report: ``render(report) -> str``.

One file with inline CSS and inline SVG, no scripts and no fetches: a Content-Security-Policy
of ``default-src 'none'`` in the page itself makes any reference to the outside a console
error rather than a request. The page reads light or dark from ``prefers-color-scheme`` and
has print rules. Charts are laid out by :mod:`lagscope.report.charts` and drawn by Jinja2
templates (autoescaped: URLs, headers and Server-Timing text come from the measured server
and are never trusted as markup). Jinja2 is the ``report`` extra.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from lagscope.browser.model import setup_ms
from lagscope.diagnose.model import DiagnoseReport
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.model import ProbeReport
from lagscope.report import charts
from lagscope.report.view import ReportView, view_of

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

__all__ = ["SEQUENCE_LIMIT", "WATERFALL_ROWS", "HtmlRenderer", "render", "render_view"]

# Rows of the waterfall: the start of a run is where new connections and warm-up show.
WATERFALL_ROWS = 40
# Points of the sequence plot; beyond this the page would pass 1 MB for the largest runs.
SEQUENCE_LIMIT = 3000


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    try:
        import jinja2
    except ImportError:
        raise LagscopeError(
            "html",
            "HTML reports need Jinja2: pip install 'lagscope[report]'",
            ExitCode.ENVIRONMENT,
        ) from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lagscope.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["ms"] = charts.fmt_ms
    env.filters["px"] = _px
    env.filters["code"] = _code_spans
    return env


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _code_spans(text: str) -> Markup:
    """Escape ``text``, then show its `backticked` spans as <code> (finding and fix texts
    quote commands and settings that way)."""
    from markupsafe import Markup, escape

    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


def _px(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def render_view(view: ReportView) -> str:
    """The page for an already built view (any report kind)."""
    tagged = view.tagged_records()
    seq_records = tagged[:SEQUENCE_LIMIT]
    names = [name for _, parts, _ in view.budget for name, _ in parts]
    classes = charts.part_classes(names)
    budget = charts.bar_chart(
        [(label, parts, note) for label, parts, note in view.budget], name_classes=classes
    )
    cost = charts.cost_chart(
        [(c.label, c.ms, c.low_ms, c.high_ms, c.significant) for c in view.costs]
    )
    st_rows: list[tuple[str, list[tuple[str, float]], str]] = []
    st_classes: list[str] = []
    for name, metrics in view.server_timing:
        for m in metrics:
            if m.dur is not None:
                st_rows.append((f"{name} {m.name}", [(m.name, m.dur.p50_ms)], f"n {m.count}"))
                st_classes.append(f"sbar s-{name}")
    loads = view.browser.loads if view.browser is not None else ()
    context: dict[str, Any] = {
        "v": view,
        "phases": charts.BAR_PHASES,
        "phase_legend": [(p, f"ph-{p}") for p in charts.BAR_PHASES],
        "budget_chart": budget,
        "budget_legend": [(n, classes[n]) for n in budget.names],
        "cost_chart": cost,
        "wf": charts.waterfall(tagged, limit=WATERFALL_ROWS),
        "dist": charts.ecdf(view.distributions),
        "seq": charts.sequence(seq_records),
        "seq_limited": len(tagged) > SEQUENCE_LIMIT,
        "st_chart": charts.bar_chart(st_rows, row_h=20.0, classes=st_classes),
        "icicles": {f.id: charts.icicle(f.frames) for f in view.findings if f.frames},
        "browser_loads": [
            (load, charts.browser_waterfall(load), setup_ms(load, loads)) for load in loads
        ],
        "browser_legend": [(p, f"ph-{p}") for p in charts.BROWSER_PHASES],
    }
    return _environment().get_template("report.html.j2").render(context)


class HtmlRenderer:
    def render(self, report: ProbeReport | DiagnoseReport) -> str:
        return render_view(view_of(report))


def render(report: ProbeReport | DiagnoseReport) -> str:
    """The self-contained HTML page of a report."""
    return HtmlRenderer().render(report)

"""Renderers for a :class:`DiagnoseReport`: each is ``render(report) -> str``.

The terminal renderer draws with rich into a string (findings worst first with cost and
fix, then the budget, then each rung's figures); colour is the caller's choice. Its strings
quote servers and saved files, so rich reads no markup in them and every string it is
given, as a ``str`` or a ``Text``, has its control characters escaped on the way in
(:class:`_PlainConsole`, :func:`_text`). The JSON
renderer writes the documented ``lagscope.report/2`` form; :func:`load_json` reads it back.
"""

from __future__ import annotations

import io
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lagscope.browser.model import BrowserRun, setup_ms
from lagscope.console import printable
from lagscope.diagnose.model import Budget, DiagnoseReport, Figure, from_dict, to_dict
from lagscope.diagnose.profiling import spot_line
from lagscope.saved import model_from_saved, saved_text

__all__ = ["JsonRenderer", "TerminalRenderer", "load_json"]

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


class JsonRenderer:
    def __init__(self, indent: int | None = 2) -> None:
        self.indent = indent

    def render(self, report: DiagnoseReport) -> str:
        return saved_text(to_dict(report), self.indent)


def load_json(data: Any) -> DiagnoseReport:
    """A report from its parsed JSON form. Raises ValueError with a readable reason."""
    return model_from_saved(data, from_dict, "lagscope.report/2")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    if abs(value) >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def _figure(f: Figure) -> str:
    if isinstance(f.value, float) and f.unit == "ms":
        text = _ms(f.value)
        if f.low is not None and f.high is not None:
            text += f" ({f.low:.4g}-{f.high:.4g})"
        return text
    if f.value is None:
        return "-"
    return f"{f.value}{(' ' + f.unit) if f.unit and f.unit != 'ms' else ''}"


def _printable(text: str) -> str:
    """``text`` with anything unprintable (control characters, ESC) shown as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text)


_ASCII = str.maketrans(
    {"–": "-", "—": "-", "−": "-", "→": "->", "≥": ">=", "≤": "<=", "µ": "u", "…": "..."}
)


class _PlainConsole(Console):
    """A rich console that takes every string as plain text: no markup (``[/]``,
    ``[link=...]``), control characters escaped. Strings given as cells, titles or to
    ``print`` all pass through ``render_str``."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(printable(text), **kwargs)


def _text(text: str, style: str = "") -> Text:
    return Text(printable(text), style=style)


class TerminalRenderer:
    """``ascii_only`` draws with ASCII alone, for consoles whose encoding (cp1252, cp437)
    cannot show box drawing or arrows."""

    def __init__(self, color: bool = False, width: int = 100, ascii_only: bool = False) -> None:
        self.color = color
        self.width = width
        self.ascii_only = ascii_only
        self._box = box.ASCII if ascii_only else box.HEAVY_HEAD

    def render(self, report: DiagnoseReport) -> str:
        buf = io.StringIO()
        console = _PlainConsole(
            file=buf,
            markup=False,
            width=self.width,
            color_system="standard" if self.color else None,
            force_terminal=self.color,
            no_color=not self.color,
            highlight=False,
            emoji=False,
        )
        console.print(_text(f"lagscope diagnose {report.url}", style="bold"))
        if report.final_url != report.url:
            console.print(f"  (redirected to {report.final_url})")
        problems = report.problems
        if not report.findings:
            console.print(
                Text("No findings: nothing here costs time it should not.", style="green")
            )
        elif not problems:
            console.print(Text("No warnings; notes below.", style="green"))
        for n, f in enumerate(report.findings, 1):
            head = _text(f"{n}. [{f.severity}] {f.id}", style=_STYLE[f.severity])
            head.append(_text(f"  {f.title}", style="bold" if f.severity != "info" else ""))
            console.print(head)
            cost = "cost not measurable here" if f.cost_ms is None else f"costs {_ms(f.cost_ms)}"
            # What the fix is worth: the cost, on each request it affects (an info finding's
            # cost is counted in another finding, or is only a note).
            saving = "; the fix saves that" if f.cost_ms and f.severity != "info" else ""
            console.print(f"   {cost}, {f.affects}{saving}")
            if f.detail:
                console.print(_text(f"   {f.detail}"))
            if f.profile is not None:
                # Names come from the server: plain text (never markup), printable only.
                console.print(Text(f"   profile: {_printable(f.profile.note)}"))
                for spot in f.profile.hotspots:
                    console.print(Text(f"     {_printable(spot_line(spot))}"))
            for line in f.fix:
                console.print(Text(f"   fix: {_printable(line)}"))
            console.print(Text(f"   confirm: {_printable(f.confirm)}"))
        for budget in report.budgets:
            console.print(self._budget(budget))
        if report.browser is not None:
            console.print(self._browser(report.browser))
        rungs = Table(title="Rungs", title_justify="left", box=self._box, expand=False)
        rungs.add_column("rung")
        rungs.add_column("status")
        rungs.add_column("figures", overflow="fold")
        for r in report.rungs:
            figs = "; ".join(f"{f.name} {_figure(f)}" for f in r.figures)
            if r.notes:
                figs = (figs + "; " if figs else "") + "; ".join(r.notes)
            rungs.add_row(r.name, f"{r.status} {r.duration_ms / 1000:.1f} s", figs)
        console.print(rungs)
        for w in report.warnings:
            console.print(_text(f"note: {w}", style="yellow"))
        console.print(
            f"{len(report.requests)} requests in {report.duration_ms / 1000:.1f} s"
            + (" (stopped early at --max-time)" if report.truncated else "")
        )
        text = buf.getvalue()
        if self.ascii_only:
            text = text.translate(_ASCII).encode("ascii", "replace").decode("ascii")
        return text

    def _browser(self, run: BrowserRun) -> Table:
        table = Table(
            title=f"What the browser did ({run.browser})", title_justify="left", box=self._box
        )
        table.add_column("load")
        table.add_column("ms", justify="right")
        table.add_column("requests", justify="right")
        table.add_column("connections", justify="right")
        table.add_column("new", justify="right")
        table.add_column("setup added", justify="right")
        for load in run.loads:
            setup = setup_ms(load, run.loads)
            table.add_row(
                load.label,
                _ms(load.load_ms),
                str(len(load.resources)),
                str(load.connections),
                str(load.new_connections),
                _ms(setup.added_ms),
            )
        if run.idle_rule:
            table.caption = run.idle_rule
        return table

    def _budget(self, budget: Budget) -> Table:
        table = Table(
            title=f"Where the time goes: a typical {budget.kind} request, {_ms(budget.total_ms)}",
            title_justify="left",
            box=self._box,
        )
        table.add_column("part")
        table.add_column("ms", justify="right")
        table.add_column("share", justify="right")
        for item in budget.items:
            name = f"  {item.name.split('.', 1)[1]}" if item.within else item.name
            share = item.ms / budget.total_ms if budget.total_ms > 0 else 0.0
            table.add_row(name, _ms(item.ms), f"{share:.0%}")
        return table

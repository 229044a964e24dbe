"""Renderers for a :class:`ProbeReport`: each is ``render(report) -> str``.

The terminal renderer draws with rich into a string, so the same text can go to a terminal,
a file or a test assertion; colour is a constructor choice made by the CLI (NO_COLOR,
non-tty). The JSON renderer is the documented ``lagscope.probe/1`` form, and
:func:`load_json` reads it back so a saved run can be rendered again.
"""

from __future__ import annotations

import io
import json
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lagscope.probe.model import PHASES, ProbeReport, RequestRecord, from_dict, to_dict
from lagscope.probe.stats import Summary

__all__ = [
    "SCHEMA_FILE",
    "JsonRenderer",
    "Renderer",
    "TerminalRenderer",
    "load_json",
    "report_from_saved",
]

# The published schema of the JSON form, in lagscope/schemas/.
SCHEMA_FILE = "probe-1.schema.json"


class Renderer(Protocol):
    def render(self, report: ProbeReport) -> str: ...


class JsonRenderer:
    def __init__(self, indent: int | None = 2) -> None:
        self.indent = indent

    def render(self, report: ProbeReport) -> str:
        return json.dumps(to_dict(report), indent=self.indent, ensure_ascii=False) + "\n"


def load_json(text: str) -> ProbeReport:
    """Parse a saved ``lagscope.probe/1`` run, validated against its published schema.
    Raises ValueError with a one-line reason."""
    from lagscope.saved import SavedFileError, parse_saved_json

    try:
        return report_from_saved(parse_saved_json(text, "report", SCHEMA_FILE))
    except SavedFileError as exc:
        raise ValueError(exc.reason) from None


def report_from_saved(data: dict[str, Any]) -> ProbeReport:
    """The report model from a dict that matches the schema (see lagscope.saved)."""
    try:
        return from_dict(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # The schema admits it but the model does not: say which part, in one line.
        raise ValueError(f"malformed lagscope.probe/1 report: missing or bad {exc}") from None


def _fmt(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def _p50_cell(s: Summary | None) -> str:
    if s is None:
        return "-"
    return f"{_fmt(s.p50_ms)} ({_fmt(s.ci_low_ms)}–{_fmt(s.ci_high_ms)})"


def _attempts_line(r: RequestRecord) -> str:
    parts = []
    for a in r.attempts:
        host = f"[{a.address}]" if a.family == "ipv6" else a.address
        parts.append(f"{host}:{a.port} {a.outcome} {_fmt(a.ms)} ms")
    return " → ".join(parts)


class TerminalRenderer:
    def __init__(self, color: bool = False, width: int = 100) -> None:
        self.color = color
        self.width = width

    def render(self, report: ProbeReport) -> str:
        buf = io.StringIO()
        console = Console(
            file=buf,
            force_terminal=self.color,
            no_color=not self.color,
            width=self.width,
            highlight=False,
            emoji=False,
        )
        cold = report.get_series("cold")
        warm = report.get_series("warm")
        first = report.get_series("warm_first")
        console.print(
            Text.assemble(
                ("lagscope probe ", "bold"),
                f"{report.method} {report.url}",
                (f"  {report.started_at}, {report.duration_ms / 1000:.1f} s", "dim"),
            )
        )
        opened = next((r for s in report.series for r in s.requests if r.attempts), None)
        source = "pinned by --resolve" if report.resolve_source == "pinned" else "DNS"
        addresses = ", ".join(report.addresses) or "-"
        console.print(f"resolve {report.host} ({source}): {addresses}")
        if opened is not None:
            console.print(f"  connect attempts: {_attempts_line(opened)}")

        table = Table(title=None, show_edge=False, pad_edge=False, box=None, padding=(0, 1))
        table.add_column("phase (ms)", style="bold")
        ns = []
        for s in (cold, warm):
            if s is not None:
                ns.append(s)
                table.add_column(f"{s.name} p50 (95% CI)", justify="right")
                table.add_column("p90", justify="right")
                table.add_column("p99", justify="right")
                table.add_column("max", justify="right")
        if cold is not None and warm is not None:
            table.add_column("cold−warm", justify="right")
        comps = {c.phase: c for c in report.comparisons}
        for phase in PHASES:
            if all(s.stats(phase) is None for s in ns):
                continue
            row: list[str | Text] = [phase]
            for s in ns:
                st = s.stats(phase)
                row += [
                    _p50_cell(st),
                    _fmt(st.p90_ms if st else None),
                    _fmt(st.p99_ms if st else None),
                    _fmt(st.max_ms if st else None),
                ]
            if cold is not None and warm is not None:
                c = comps.get(phase)
                if c is None:
                    row.append("")
                elif c.significant:
                    row.append(f"{c.diff_ms:+.2f}")
                else:
                    row.append(Text(f"{c.diff_ms:+.2f} noise", style="dim"))
            table.add_row(*row)
        counts = ", ".join(f"{s.name} n={len(s.requests)}" for s in ns)
        console.print()
        console.print(Text(f"Phases ({counts})", style="bold"))
        console.print(table)
        if first is not None and first.requests:
            r = first.requests[0]
            console.print(
                f"warm connection's first request (not in warm stats): total {_fmt(r.total_ms)} ms,"
                f" wait {_fmt(r.wait_ms)} ms"
            )
        console.print()
        console.print(Text("Verdict: ", style="bold") + Text(report.verdict))
        for s in (cold, warm):
            if s is None or not s.server_timing:
                continue
            mt = Table(show_edge=False, box=None, padding=(0, 1))
            mt.add_column(f"Server-Timing ({s.name})", style="bold")
            mt.add_column("n", justify="right")
            mt.add_column("p50 ms", justify="right")
            mt.add_column("p90 ms", justify="right")
            mt.add_column("desc")
            for m in s.server_timing:
                mt.add_row(
                    m.name,
                    str(m.count),
                    _fmt(m.dur.p50_ms if m.dur else None),
                    _fmt(m.dur.p90_ms if m.dur else None),
                    m.desc or "",
                )
            console.print()
            console.print(mt)
            if s.outside_app is not None:
                console.print(
                    f"outside-app time ({s.name}: time to first byte − app total): "
                    f"p50 {_p50_cell(s.outside_app)} ms"
                )
        if report.keep_alive.reconnects:
            console.print(
                f"reconnects: the server dropped the idle warm connection "
                f"{report.keep_alive.reconnects} time(s)"
            )
        for w in report.warnings:
            console.print(Text("warning: ", style="yellow") + Text(w))
        return buf.getvalue()

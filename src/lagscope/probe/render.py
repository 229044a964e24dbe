"""Renderers for a :class:`ProbeReport`: each is ``render(report) -> str``.

The terminal renderer lays out plain text (ANSI styles only when asked), so the same text can
go to a terminal, a file or a test assertion; colour is a constructor choice made by the CLI
(NO_COLOR, non-tty). The JSON renderer is the documented ``lagscope.probe/2`` form, and
:func:`load_json` reads it back so a saved run can be rendered again.
"""

from __future__ import annotations

from typing import Any, Protocol

from lagscope.console import printable
from lagscope.probe.model import (
    PHASES,
    RESOLVE_SOURCES,
    ProbeReport,
    RequestRecord,
    from_dict,
    to_dict,
)
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
SCHEMA_FILE = "probe-2.schema.json"


class Renderer(Protocol):
    def render(self, report: ProbeReport) -> str: ...


class JsonRenderer:
    def __init__(self, indent: int | None = 2) -> None:
        self.indent = indent

    def render(self, report: ProbeReport) -> str:
        from lagscope.saved import saved_text  # here: a run printed for people needs no JSON

        return saved_text(to_dict(report), self.indent)


def load_json(text: str) -> ProbeReport:
    """Parse a saved ``lagscope.probe/2`` run, validated against its published schema.
    Raises ValueError with a one-line reason."""
    from lagscope.saved import SavedFileError, parse_saved_json

    try:
        return report_from_saved(parse_saved_json(text, "report", SCHEMA_FILE))
    except SavedFileError as exc:
        raise ValueError(exc.reason) from None


def report_from_saved(data: dict[str, Any]) -> ProbeReport:
    """The report model from a dict that matches the schema (see lagscope.saved); the schema
    admits what the model does not: a ValueError says which part, in one line."""
    from lagscope.saved import model_from_saved

    return model_from_saved(data, from_dict, "lagscope.probe/2")


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


# ANSI styles for a colour terminal (SGR codes: bold, dim, yellow).
_BOLD, _DIM, _YELLOW, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[33m", "\x1b[0m"

Cell = tuple[str, str]  # (text, style: "" or an SGR code)


class _Page:
    """Lines of text at a fixed width, styled only when colour is on. Every text that enters
    (paragraphs, cells, lines) has its control characters escaped here, so a server's
    string shows as text and the only escape sequences out are the page's own styles."""

    def __init__(self, color: bool, width: int) -> None:
        self.color = color
        self.width = width
        self.lines: list[str] = []

    def styled(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.color and style and text else text

    def text(self, *parts: Cell) -> None:
        """One paragraph, wrapped at the width; each part keeps its style."""
        import textwrap  # only a printed page wraps; its regexes compile on import

        parts = tuple((printable(t), style) for t, style in parts)
        plain = "".join(t for t, _ in parts)
        wrapped = textwrap.wrap(
            plain, self.width, break_long_words=False, break_on_hyphens=False
        ) or [""]
        if not self.color:
            self.lines.extend(wrapped)
            return
        # Re-apply styles over the wrapped text: walk the parts' characters in order.
        styles = [style for t, style in parts for _ in t]
        pos = 0
        for line in wrapped:
            pos = plain.index(line, pos)
            out, current, run = [], None, ""
            for i, ch in enumerate(line):
                style = styles[pos + i]
                if style != current and run:
                    out.append(self.styled(run, current or ""))
                    run = ""
                current = style
                run += ch
            out.append(self.styled(run, current or ""))
            self.lines.append("".join(out))
            pos += len(line)

    def table(self, header: list[str], rows: list[list[Cell]], first_style: str = _BOLD) -> None:
        """Columns two spaces apart: the first left-aligned and styled, the rest right-aligned."""
        header = [printable(h) for h in header]
        rows = [[(printable(t), style) for t, style in row] for row in rows]
        widths = [len(h) for h in header]
        for row in rows:
            for i, (t, _) in enumerate(row):
                widths[i] = max(widths[i], len(t))

        def fit(i: int, t: str) -> str:
            return t.ljust(widths[i]) if i == 0 else t.rjust(widths[i])

        self.lines.append(
            "  ".join(self.styled(fit(i, h), _BOLD) for i, h in enumerate(header)).rstrip()
        )
        for row in rows:
            cells = [
                self.styled(fit(i, t), first_style if i == 0 else style)
                for i, (t, style) in enumerate(row)
            ]
            self.lines.append("  ".join(cells).rstrip())

    def line(self, text: str) -> None:
        """One line as it is (no wrapping, no style)."""
        self.lines.append(printable(text))

    def render(self) -> str:
        return "".join(line + "\n" for line in self.lines)


class TerminalRenderer:
    """The human view: header, address attempts, the phase table, the verdict, Server-Timing
    metrics and warnings. Plain text, with ANSI styles when ``color`` (no rich, so printing a
    report does not pay for importing it)."""

    def __init__(self, color: bool = False, width: int = 100) -> None:
        self.color = color
        self.width = width

    def render(self, report: ProbeReport) -> str:
        page = _Page(self.color, self.width)
        cold = report.get_series("cold")
        warm = report.get_series("warm")
        first = report.get_series("warm_first")
        page.text(
            ("lagscope probe ", _BOLD),
            (f"{report.method} {report.url}", ""),
            (f"  {report.started_at}, {report.duration_ms / 1000:.1f} s", _DIM),
        )
        opened = next((r for s in report.series for r in s.requests if r.attempts), None)
        source = RESOLVE_SOURCES.get(report.resolve_source, "DNS")
        addresses = ", ".join(report.addresses) or "-"
        page.text((f"resolve {report.host} ({source}): {addresses}", ""))
        if opened is not None:
            page.line(f"  connect attempts: {_attempts_line(opened)}")

        header = ["phase (ms)"]
        ns = []
        for s in (cold, warm):
            if s is not None:
                ns.append(s)
                header += [f"{s.name} p50 (95% CI)", "p90", "p99", "max"]
        both = cold is not None and warm is not None
        if both:
            header.append("cold−warm")
        comps = {c.phase: c for c in report.comparisons}
        rows: list[list[Cell]] = []
        for phase in PHASES:
            if all(s.stats(phase) is None for s in ns):
                continue
            row: list[Cell] = [(phase, "")]
            for s in ns:
                st = s.stats(phase)
                row += [
                    (_p50_cell(st), ""),
                    (_fmt(st.p90_ms if st else None), ""),
                    (_fmt(st.p99_ms if st else None), ""),
                    (_fmt(st.max_ms if st else None), ""),
                ]
            if both:
                c = comps.get(phase)
                if c is None:
                    row.append(("", ""))
                elif c.significant:
                    row.append((f"{c.diff_ms:+.2f}", ""))
                else:
                    row.append((f"{c.diff_ms:+.2f} noise", _DIM))
            rows.append(row)
        counts = ", ".join(f"{s.name} n={len(s.requests)}" for s in ns)
        page.line("")
        page.text((f"Phases ({counts})", _BOLD))
        page.table(header, rows)
        if first is not None and first.requests:
            r = first.requests[0]
            page.text(
                (
                    f"warm connection's first request (not in warm stats): total"
                    f" {_fmt(r.total_ms)} ms, wait {_fmt(r.wait_ms)} ms",
                    "",
                )
            )
        page.line("")
        page.text(("Verdict: ", _BOLD), (report.verdict, ""))
        for s in (cold, warm):
            if s is None or not s.server_timing:
                continue
            metric_rows: list[list[Cell]] = [
                [
                    (m.name, ""),
                    (str(m.count), ""),
                    (_fmt(m.dur.p50_ms if m.dur else None), ""),
                    (_fmt(m.dur.p90_ms if m.dur else None), ""),
                    (m.desc or "", ""),
                ]
                for m in s.server_timing
            ]
            page.line("")
            page.table([f"Server-Timing ({s.name})", "n", "p50 ms", "p90 ms", "desc"], metric_rows)
            if s.outside_app is not None:
                page.text(
                    (
                        f"outside-app time ({s.name}: time to first byte − app total): "
                        f"p50 {_p50_cell(s.outside_app)} ms",
                        "",
                    )
                )
        if report.keep_alive.reconnects:
            page.text(
                (
                    "reconnects: the server dropped the idle warm connection "
                    f"{report.keep_alive.reconnects} time(s)",
                    "",
                )
            )
        for w in report.warnings:
            page.text(("warning: ", _YELLOW), (w, ""))
        return page.render()

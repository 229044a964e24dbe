"""The terminal view of a diagnosis against any string a server or a saved file may hold:
no control character reaches the terminal and no string is read as rich markup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lagscope.console import printable
from lagscope.diagnose import DiagnoseReport
from lagscope.diagnose import run as diagnose
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.render import TerminalRenderer
from support.hostile import assert_terminal_safe, hostile_text
from support.wsgi import waitress_server


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    if environ["PATH_INFO"] == "/":
        start_response("302 Found", [("Location", "/next[/]x[bold]y"), ("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture(scope="module")
def measured() -> Iterator[DiagnoseReport]:
    with waitress_server(_app) as (host, port):
        yield diagnose(f"http://{host}:{port}/", quick=True)


def test_markup_in_a_redirect_is_shown_as_it_is(measured: DiagnoseReport) -> None:
    """``[/]`` would end the run in a MarkupError, ``[bold]`` would vanish."""
    for color in (False, True):
        out = TerminalRenderer(color=color).render(measured)
        assert "/next[/]x[bold]y" in out
        assert "\x1b]8;" not in out  # no hyperlink


def _hostile(report: DiagnoseReport, s: str) -> DiagnoseReport:
    finding = Finding(
        id=s, title=s, severity="warning", cost_ms=1.0, affects="every request",
        evidence=(Figure(s, s),), fix=(s,), confirm=s, detail=s,
    )  # fmt: skip
    rungs = tuple(replace(r, notes=(s,), figures=(Figure(s, s, unit=s),)) for r in report.rungs)
    return replace(
        report, url=s, final_url=s + "/", findings=(finding,), rungs=rungs, warnings=(s,)
    )


@pytest.fixture(scope="module")
def measured_later(measured: DiagnoseReport) -> Callable[[], DiagnoseReport]:
    """The report behind a function: hypothesis shows every argument of each example, and
    the report's own repr (~44 kB) with a long string passes its 50 kB warning."""
    return lambda: measured


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_text, st.booleans(), st.booleans())
def test_no_control_character_reaches_the_terminal(
    measured_later: Callable[[], DiagnoseReport], s: str, color: bool, ascii_only: bool
) -> None:
    report = _hostile(measured_later(), s)
    out = TerminalRenderer(color=color, ascii_only=ascii_only).render(report)
    assert_terminal_safe(out, color)
    if not ascii_only:
        assert f"lagscope diagnose {printable(s)}"[:40] in out.replace("\n", "")

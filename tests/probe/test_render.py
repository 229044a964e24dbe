"""The terminal view of a probe run against any string a server or a saved file may hold
(Server-Timing names and descriptions, the URL, warnings): escaped, never interpreted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lagscope.probe.model import ProbeReport
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.render import TerminalRenderer
from lagscope.probe.runner import run_probe
from support.hostile import assert_terminal_safe, hostile_text
from support.wsgi import waitress_server


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    timing = 'app;dur=0;desc="x", db;dur=0'
    start_response("200 OK", [("Content-Length", "2"), ("Server-Timing", timing)])
    return [b"ok"]


@pytest.fixture(scope="module")
def measured() -> Iterator[ProbeReport]:
    with waitress_server(_app) as (host, port):
        yield run_probe(ProbeOptions(target=parse_url(f"http://{host}:{port}/"), cold=2, warm=2))


def _hostile(report: ProbeReport, s: str) -> ProbeReport:
    series = tuple(
        replace(se, server_timing=tuple(replace(m, name=s, desc=s) for m in se.server_timing))
        for se in report.series
    )
    return replace(report, url=s, host=s, verdict=s, warnings=(s,), series=series)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile_text, st.booleans())
def test_no_control_character_reaches_the_terminal(
    measured: ProbeReport, s: str, color: bool
) -> None:
    assert any(se.server_timing for se in measured.series)
    assert_terminal_safe(TerminalRenderer(color=color).render(_hostile(measured, s)), color)

"""diagnose asks for a profile when the app's own work is slow, against real servers: the
finding names the helper function and the line issuing the N+1 queries, and no profile is
ever asked of a server that does not send lagscope's trusted Server-Timing detail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import override_settings

import django_test_urls
from lagscope.diagnose import run
from lagscope.diagnose.model import DiagnoseReport, FindingProfile
from lagscope.diagnose.profiling import REASON_LINES, UNTRUSTED_LINE
from lagscope.diagnose.render import JsonRenderer, TerminalRenderer, load_json
from lagscope.instrument.wsgi import WsgiServerTimingMiddleware
from lagscope.report import html
from lagscope.saved import parse_saved_json
from support.wsgi import waitress_server


@pytest.fixture
def django_app(django_db_blocker: Any) -> Iterator[Any]:
    with django_db_blocker.unblock():
        yield WSGIHandler()


def _url(address: tuple[str, int], path: str) -> str:
    return f"http://{address[0]}:{address[1]}{path}"


def profile_of(report: DiagnoseReport, finding_id: str) -> FindingProfile:
    finding = report.finding(finding_id)
    assert finding is not None, [f.id for f in report.findings]
    assert finding.profile is not None
    return finding.profile


@override_settings(LAGSCOPE={"PROFILE": True})
def test_slow_app_names_the_helper_with_its_time(django_app: Any) -> None:
    with waitress_server(django_app) as app:
        report = run(_url(app, "/helper/?s=0.2"), quick=True)
    profile = profile_of(report, "slow-app")
    top = profile.hotspots[0]
    assert top.function == "slow_helper", profile
    assert 150 <= top.ms <= 250
    assert top.share > 0.6
    assert top.spends_in == ("sleep (<built-in>)",)
    assert [r.series for r in report.requests].count("profile") in (1, 2)
    finding = report.finding("slow-app")
    assert finding is not None
    evidence = {e.name: e.value for e in finding.evidence}
    assert str(evidence["profiled_hotspot"]).startswith("slow_helper (")
    assert finding.fix[0].startswith("Start with slow_helper (")
    # Every output shows it; the JSON (schema-checked) reloads to the same findings.
    terminal = TerminalRenderer().render(report)
    assert "slow_helper (" in terminal and "in sleep (<built-in>)" in terminal
    text = JsonRenderer().render(report)
    assert parse_saved_json(text, "run.json", "report-1.schema.json") == json.loads(text)
    reloaded = load_json(json.loads(text))
    assert reloaded.findings == report.findings
    assert JsonRenderer().render(reloaded) == text
    page = html.render(report)
    assert 'id="profile-slow-app-chart"' in page and "<title>slow_helper (" in page
    # Names from the server are text in the page, never markup.
    hostile = replace(
        profile,
        frames=tuple(replace(f, function="<script>alert(1)</script>") for f in profile.frames),
        hotspots=(replace(top, function="<img src=x onerror=alert(1)>"),),
    )
    findings = tuple(replace(f, profile=hostile) if f is finding else f for f in report.findings)
    page = html.render(replace(report, findings=findings))
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@override_settings(LAGSCOPE={"PROFILE": True})
def test_many_queries_names_the_line_issuing_them(django_app: Any) -> None:
    with waitress_server(django_app) as app:
        report = run(_url(app, "/repeated/?n=200"), quick=True)
    top = profile_of(report, "many-queries").hotspots[0]
    assert top.function == "repeated"
    source = Path(django_test_urls.__file__).read_text().splitlines()
    assert "cursor.execute(" in source[top.line - 1]
    assert top.spends_in[0].startswith("CursorWrapper.execute (django/")


def test_with_profile_mode_off_the_finding_says_so(django_app: Any) -> None:
    with waitress_server(django_app) as app:
        report = run(_url(app, "/helper/?s=0.15"), quick=True)
    profile = profile_of(report, "slow-app")
    assert profile.note == REASON_LINES["off"] and not profile.hotspots


class Recorder:
    """A slow WSGI app that remembers whether any request asked for a profile."""

    def __init__(self) -> None:
        self.asked = 0
        self.requests = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self.lock:
            self.requests += 1
            self.asked += "HTTP_X_LAGSCOPE_PROFILE" in environ
        time.sleep(0.12)
        body = b"slow"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [body]


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda app: app, id="no Server-Timing"),
        pytest.param(
            lambda app: WsgiServerTimingMiddleware(
                app, profile=True, trust_loopback=False, untrusted="total"
            ),
            id="untrusted: total only",
        ),
    ],
)
def test_no_profile_is_asked_without_the_trusted_detail(wrap: Any) -> None:
    recorder = Recorder()
    with waitress_server(wrap(recorder)) as app:
        report = run(_url(app, "/"), quick=True)
    profile = profile_of(report, "slow-app")
    assert profile.note == UNTRUSTED_LINE
    assert recorder.requests > 10 and recorder.asked == 0
    assert "profile" not in [r.series for r in report.requests]


def test_a_trusted_wsgi_app_is_profiled() -> None:
    recorder = Recorder()
    with waitress_server(WsgiServerTimingMiddleware(recorder, profile=True)) as app:
        report = run(_url(app, "/"), quick=True)
    top = profile_of(report, "slow-app").hotspots[0]
    assert top.function == "Recorder.__call__" and 90 <= top.ms <= 180
    assert recorder.asked in (1, 2)


def hostile(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    # Claims lagscope's trusted detail and answers the profile request with an escape
    # sequence in a function name.
    time.sleep(0.12)
    headers = [
        ("Content-Type", "text/plain"),
        ("Content-Length", "2"),
        ("Server-Timing", "total;dur=120, thread;desc=evil"),
    ]
    if "HTTP_X_LAGSCOPE_PROFILE" in environ:
        headers.append(
            ("X-Lagscope-Profile", "1 120000 -,120000,0,1,a,%1B%5B2J%1B%5D0%3Bx%07,v.py")
        )
    start_response("200 OK", headers)
    return [b"ok"]


def test_a_hostile_profile_is_refused_in_one_line_and_never_reaches_the_terminal() -> None:
    with waitress_server(hostile) as app:
        report = run(_url(app, "/"), quick=True)
    profile = profile_of(report, "slow-app")
    assert profile.note == (
        "No profile: the server's profile was refused (profile frame 0's function has "
        "control or unprintable characters)."
    )
    assert not profile.frames and not profile.hotspots
    terminal = TerminalRenderer().render(report)
    assert "\x1b" not in terminal and "\x07" not in terminal

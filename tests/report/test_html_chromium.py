"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

"Self-contained" is checked from the browser's side: every request the page makes is
recorded (Network.requestWillBeSent) and the only one allowed is the file itself; every
console message, uncaught exception and browser log entry (where CSP violations land) must
be absent. Two control pages show the checks can fail. The screenshot is kept under
tests/artifacts/ (ignored by git) for a person to look at.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lagscope.probe.model import ProbeReport, to_dict
from lagscope.report import html
from lagscope.report.write import as_saved
from support.chromium import CHROMIUM, Page, decode_png, open_page

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

ARTIFACTS = Path(__file__).parents[1] / "artifacts"


@pytest.fixture(scope="module")
def probe_page(taxed_probe: ProbeReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "probe.html"
    path.write_text(html.render(as_saved(taxed_probe)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded(probe_page: Path) -> Iterator[tuple[Page, str]]:
    with open_page(probe_page) as page:
        yield page, probe_page.resolve().as_uri()


def test_no_requests_and_no_console_errors(loaded: tuple[Page, str]) -> None:
    page, url = loaded
    assert page.requested_urls() == [url]
    assert page.console_errors() == []
    # The hostile Server-Timing desc is shown as text, never run as markup.
    assert page.evaluate("document.scripts.length") == 0
    assert "<script>alert(1)</script>" in page.evaluate("document.body.innerText")


def test_screenshot_is_not_blank_and_is_kept(loaded: tuple[Page, str]) -> None:
    page, _ = loaded
    width, height, rows = decode_png(page.thumbnail_png())
    assert width > 100 and height > 100
    pixels = {row[i : i + 3] for row in rows for i in range(0, len(row), 4)}
    # A blank page is one colour; the report has text, bars and points in many.
    assert len(pixels) > 50
    full = page.screenshot_png()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-probe.png").write_bytes(full)
    assert full[:8] == b"\x89PNG\r\n\x1a\n"


def test_dom_text_has_the_verdict_and_the_jsons_numbers(
    loaded: tuple[Page, str], taxed_probe: ProbeReport
) -> None:
    page, _ = loaded
    text = page.evaluate("document.body.innerText")
    data = to_dict(taxed_probe)  # the JSON form: its numbers are the page's
    assert data["verdict"] in text
    total = next(c for c in data["comparisons"] if c["phase"] == "total")
    assert total["significant"]
    assert f"{total['diff_ms']:,.2f} ms" in text  # the headline cost
    cold = next(s for s in data["series"] if s["name"] == "cold")
    assert f"{cold['phases']['total']['p50_ms']:,.2f}" in text
    # Every section, in the page's order.
    order = [
        "Cold minus warm",
        "Where the time goes",
        "Waterfall",
        "Cold against warm",
        "Request sequence",
        "Server-Timing",
        "Figures",
        "Environment",
        "Command line and version",
    ]
    positions = [text.find(s) for s in order]
    assert -1 not in positions and positions == sorted(positions)


def test_every_chart_has_a_text_equivalent(loaded: tuple[Page, str]) -> None:
    page, _ = loaded
    charts = page.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => [s.id, s.getAttribute('role'),"
        " (s.querySelector('title') || {}).textContent,"
        " (s.querySelector('desc') || {}).textContent])"
    )
    assert {c[0] for c in charts} >= {
        "costs-chart",
        "budget-chart",
        "waterfall-chart",
        "ecdf-chart",
        "sequence-chart",
        "st-chart",
    }
    for chart_id, role, title, desc in charts:
        assert role == "img", chart_id
        assert title and desc, chart_id


def test_waterfall_marks_new_connections_and_sequence_names_workers(
    loaded: tuple[Page, str], taxed_probe: ProbeReport
) -> None:
    page, _ = loaded
    rows = page.evaluate(
        "[...document.querySelectorAll('#waterfall-chart g.wrow')].map(g => g.classList[1])"
    )
    records = sorted((r for s in taxed_probe.series for r in s.requests), key=lambda r: r.start_ms)
    assert rows == ["reused" if r.reused else "new" for r in records[: len(rows)]]
    # Connect rectangles only on new connections.
    connects = page.evaluate(
        "[...document.querySelectorAll('#waterfall-chart g.wrow')]"
        ".map(g => g.querySelectorAll('rect.ph-connect').length)"
    )
    assert connects == [0 if r.reused else 1 for r in records[: len(rows)]]
    legend = page.evaluate("document.querySelector('#sequence').innerText")
    assert re.search(r"waitress-\d", legend)


def test_dark_mode_and_print(loaded: tuple[Page, str]) -> None:
    page, _ = loaded
    background = "getComputedStyle(document.documentElement).backgroundColor"
    page.set_color_scheme("light")
    light = page.evaluate(background)
    page.set_color_scheme("dark")
    dark = page.evaluate(background)
    assert light == "rgb(255, 255, 255)"
    assert dark != light
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-probe-dark.png").write_bytes(page.screenshot_png())
    page.set_color_scheme("light")
    pdf = page.pdf()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    (ARTIFACTS / "report-probe.pdf").write_bytes(pdf)


# --- the checks themselves can fail ---------------------------------------------------------


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_control_a_page_that_fetches_is_caught(
    tmp_path: Path, counting_server: tuple[str, list[str]]
) -> None:
    base, hits = counting_server
    page_path = tmp_path / "fetching.html"
    page_path.write_text(f'<!doctype html><title>x</title><img src="{base}/pixel.png">')
    with open_page(page_path) as page:
        urls = page.requested_urls()
    assert f"{base}/pixel.png" in urls
    assert hits == ["/pixel.png"]


def test_control_the_reports_csp_blocks_and_reports_a_fetch(
    tmp_path: Path, counting_server: tuple[str, list[str]]
) -> None:
    base, hits = counting_server
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    page_path = tmp_path / "blocked.html"
    page_path.write_text(
        f'<!doctype html><meta http-equiv="Content-Security-Policy" content="{csp}">'
        f'<title>x</title><img src="{base}/pixel.png">'
    )
    with open_page(page_path) as page:
        errors = page.console_errors()
    assert hits == []
    assert any("Content Security Policy" in e for e in errors), errors

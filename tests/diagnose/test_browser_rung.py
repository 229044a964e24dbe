"""``diagnose --browser`` on a real stack: a ten-asset page on waitress behind an independent
300 ms per-connection hold (tests/support/taxproxy.py), Debian's Chromium through Playwright."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lagscope.diagnose.model import DiagnoseReport, from_dict
from lagscope.report.html import render
from lagscope.serve import ServeProcess
from support.browser import needs_browser
from support.chromium import CHROMIUM, open_page
from support.net import free_port
from support.taxproxy import TaxedSite, taxed_site

TAX_S = 0.3


def close_to(measured: float, expected: float) -> bool:
    """Within 15 % or 20 ms, whichever is wider."""
    return abs(measured - expected) <= max(0.15 * expected, 20.0)


def lagscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lagscope", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def site() -> Iterator[TaxedSite]:
    with taxed_site(TAX_S) as running:
        yield running


def chromium_load_ms(url: str, first: str) -> float:
    """The same page's cold load as Chromium itself measures it, driven over its DevTools
    pipe (tests/support/chromium.py), not through lagscope. ``first`` (the same server
    without the tax, another port) starts the tab's renderer, as Playwright's page has one
    running before it navigates; no connection is shared."""
    with open_page(url, first=first) as page:
        value = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    return float(value)


@needs_browser
@pytest.mark.skipif(CHROMIUM is None, reason="the DevTools-pipe helper needs POSIX")
def test_browser_rung_agrees_with_chromium_and_prices_the_connections(
    site: TaxedSite, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{site.port}/"
    out = tmp_path / "d.json"
    # A starved machine only adds time, to either side: the best of up to three runs of
    # each is compared, stopping once they agree (a wrong cold load never agrees).
    ours: list[float] = []
    chromium: list[float] = []
    for _ in range(3):
        done = lagscope("diagnose", url, "--browser", "--quick", "--json", "-o", str(out))
        assert "Traceback" not in done.stderr
        assert done.returncode in (0, 1), done.stderr
        report = from_dict(json.loads(out.read_text(encoding="utf-8")))
        # A warning or worse, every run: the tax is 300 ms on every new connection.
        assert done.returncode == 1, [(f.id, f.severity) for f in report.findings]
        run = report.browser
        assert run is not None
        cold = run.load("cold")
        assert cold is not None
        ours.append(cold.load_ms)
        chromium.append(chromium_load_ms(url, f"http://127.0.0.1:{site.direct_port}/"))
        if close_to(min(ours), min(chromium)):
            break
    else:
        pytest.fail(f"the browser rung's cold load never agreed with Chromium's: {ours} {chromium}")
    rung = next(r for r in report.rungs if r.name == "browser")
    assert rung.status == "ran"
    figures = {f.name: f.value for f in rung.figures}
    assert figures["cold_connections_opened"] == cold.new_connections
    assert 2 <= cold.new_connections <= 6
    finding = report.finding("page-new-connections")
    assert finding is not None and finding.severity in ("warning", "critical")
    _, held, _ = site.stats()
    assert finding.cost_ms is not None
    assert close_to(finding.cost_ms, 2 * statistics.median(held)) or finding.cost_ms > 2 * (
        TAX_S * 1000
    ), finding
    tax = report.finding("connection-setup-tax")
    assert tax is not None
    assert {"browser_connections_opened", "browser_per_connection_ms"} <= {
        e.name for e in tax.evidence
    }
    check_waterfall(report, tmp_path)


def check_waterfall(report: DiagnoseReport, tmp_path: Path) -> None:
    """The HTML report draws the browser's cold load, one row per request, in Chromium."""
    page_file = tmp_path / "report.html"
    page_file.write_text(render(report), encoding="utf-8")
    with open_page(page_file) as page:
        rows = page.evaluate(
            "[...document.querySelectorAll('#browser-waterfall-1 g.wrow')]"
            ".map(g => [g.classList.contains('new') ? 'new' : 'reused',"
            " g.querySelector('.conn').textContent,"
            " g.querySelectorAll('rect').length])"
        )
        assert page.console_errors() == []
    assert report.browser is not None
    cold = report.browser.loads[0]
    assert len(rows) == len(cold.resources)
    assert sum(kind == "new" for kind, _, _ in rows) == cold.new_connections
    assert all(text.endswith(kind) for kind, text, _ in rows)
    # Every request drew its phases (a connection's first one its wait, at least).
    assert all(n >= 1 for _, _, n in rows)


def test_browser_flags_need_browser_and_a_real_path() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    alone = lagscope("diagnose", url, "--browser-idle", "5")
    assert alone.returncode == 2
    assert alone.stderr.count("\n") == 1 and "--browser" in alone.stderr
    missing = lagscope("diagnose", url, "--browser", "--browser-path", "/nonexistent/chrome")
    # Found missing before anything is measured (the URL refuses: it was never tried).
    assert missing.returncode == 8, missing.stderr
    assert missing.stderr.startswith("lagscope: browser: --browser-path")
    assert missing.stderr.count("\n") == 1


@needs_browser
@pytest.mark.skipif(
    importlib.util.find_spec("granian") is None or importlib.util.find_spec("cryptography") is None,
    reason="serve --https needs granian and cryptography",
)
def test_browser_trusts_the_cacert_and_reports_http2(tmp_path: Path) -> None:
    """``--cacert`` reaches the browser as the server's key verified against that CA
    (nothing installed), so the browser rung reports what it spoke over serve --https: h2,
    one connection, and no HTTP/2 advice."""
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(tmp_path))
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    out = tmp_path / "d.json"
    with ServeProcess(["--demo", "--https", "--port", "0"], env=env) as server:
        ca = str(tmp_path / "cert" / "rootCA.pem")
        url = f"{server.url}/items/"
        done = lagscope("diagnose", url, "--browser", "--quick", "--cacert", ca, "-o", str(out))
    assert done.returncode in (0, 1), done.stderr
    report = from_dict(json.loads(out.read_text(encoding="utf-8")))
    rung = next(r for r in report.rungs if r.name == "browser")
    figures = {f.name: f.value for f in rung.figures}
    assert figures["protocol"] == "h2" and figures["cold_connections_opened"] == 1, figures
    for f in report.findings:
        assert not any(x.startswith("Serve over HTTP/2") for x in f.fix), f.id

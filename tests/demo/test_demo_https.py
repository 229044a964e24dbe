"""``lagscope demo --https``: "lagscope" served over HTTPS with HTTP/2, its page loaded by the
demo's real browser on one connection, trusting the run's own CA by its key only."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from lagscope.demo.model import HTML_PAGE

from .test_demo_run import _run, sandbox

__all__ = ["sandbox"]

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("playwright", "granian", "cryptography"))
    or not (shutil.which("chromium") or shutil.which("google-chrome")),
    reason="Chromium, Playwright, granian and cryptography needed",
)


def test_lagscope_over_https_uses_one_h2_connection(sandbox: Path) -> None:
    run = _run(
        sandbox,
        "--quick",
        "--json",
        "--no-diagnose",
        "--tax",
        "100",
        "--database",
        "sqlite",
        "--https",
    )
    assert run.code == 0, run.stderr
    report = run.report
    assert report.https and report.browser is not None
    for v in report.versions:
        page = v.browser_page(HTML_PAGE)
        assert page is not None, (v.name, report.notes)
        assert page.requests == 11  # the document and its ten static files
        if v.name == "lagscope":
            assert v.url.startswith("https://127.0.0.1:")
            assert page.protocol == "h2" and page.connections == 1
        else:
            assert v.url.startswith("http://127.0.0.1:")
            assert page.protocol == "http/1.1" and page.connections > 1
    # The client's visit reached lagscope over TLS: three connections, each taxed once.
    ours = report.version("lagscope")
    assert ours.http_connections == 3 and ours.http_taxed == 3
    assert all(s.status == 200 for s in ours.samples)

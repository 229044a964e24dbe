"""Fixtures for the browser tests: one headless Chromium (Debian's, through Playwright's
``executable_path``, never a downloaded one) and the ten-asset site behind a tax."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lagscope.browser import BrowserSession, open_browser
from support.browser import have_browser
from support.taxproxy import TaxedSite, taxed_site

__all__ = ["TAX_S", "browser", "have_browser", "site"]

TAX_S = 0.3


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserSession]:
    if not have_browser():
        pytest.skip("no Chromium or no Playwright (the browser extra)")
    with open_browser(timeout_s=30) as session:
        yield session


@pytest.fixture
def site() -> Iterator[TaxedSite]:
    """The ten-asset page on waitress behind an independent 300 ms per-connection tax, in a
    process of its own."""
    with taxed_site(TAX_S) as running:
        yield running

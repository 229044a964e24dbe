"""Whether the browser tests can run: Playwright for Python (the browser extra) and an
installed Chromium or Chrome, driven through ``executable_path`` (never a downloaded one)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

__all__ = ["have_browser", "needs_browser"]


def have_browser() -> bool:
    return importlib.util.find_spec("playwright") is not None and bool(
        shutil.which("chromium") or shutil.which("google-chrome")
    )


needs_browser = pytest.mark.skipif(
    not have_browser(), reason="no Chromium or no Playwright (the browser extra)"
)

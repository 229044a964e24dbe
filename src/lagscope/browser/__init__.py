"""A real browser, already on the machine, loading a page: what it did, connection by connection.

``lagscope.browser`` owns driving a browser (Playwright for Python, the ``browser`` extra,
never a downloaded browser) and the model of what it reported: per load, every request's
phases, protocol, Server-Timing, connection id and whether that connection was new. It is
used by ``diagnose --browser`` and ``lagscope demo``, and works for ``https://`` URLs
(``ignore_https_errors`` for a local certificate authority).

* :mod:`lagscope.browser.model`: the frozen model, :func:`build_load`, :func:`setup_ms` (pure);
* :mod:`lagscope.browser.locate`: which browser to drive (pure);
* :mod:`lagscope.browser.driver`: the Playwright shell (imports Playwright when used).
"""

from __future__ import annotations

from lagscope.browser.driver import BrowserSession, load_page, open_browser
from lagscope.browser.locate import BrowserChoice, find_browser
from lagscope.browser.model import (
    BrowserRun,
    PageLoad,
    ResourceLoad,
    Setup,
    build_load,
    idle_rule,
    run_from_dict,
    run_to_dict,
    setup_ms,
)

__all__ = [
    "BrowserChoice",
    "BrowserRun",
    "BrowserSession",
    "PageLoad",
    "ResourceLoad",
    "Setup",
    "build_load",
    "find_browser",
    "idle_rule",
    "load_page",
    "open_browser",
    "run_from_dict",
    "run_to_dict",
    "setup_ms",
]

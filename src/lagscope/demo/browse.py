"""The demo's real browser: each version's HTML page and JSON page, as a browser loads them.

:func:`find_browser_for_demo` decides before anything starts whether a browser will run (the
demo works without one, and says so in one line); :func:`browse` loads both pages of a
version cold in a fresh context and reloaded, through :mod:`lagscope.browser`;
:func:`page_figures` (pure) reduces a browser run to the demo's :class:`BrowserPage`.
"""

from __future__ import annotations

from lagscope.browser.driver import BrowserSession, check_ready
from lagscope.browser.locate import BrowserChoice
from lagscope.browser.model import BrowserRun, setup_ms
from lagscope.demo.model import HTML_PAGE, JSON_PAGE, BrowserPage
from lagscope.errors import LagscopeError

__all__ = ["browse", "find_browser_for_demo", "page_figures"]

# A page load on a taxed stack takes a second or two; this bounds a hung one.
LOAD_TIMEOUT_S = 30.0


def find_browser_for_demo(
    wanted: bool, browser_path: str | None
) -> tuple[BrowserChoice | None, str | None]:
    """The browser to use, or None and the one-line note saying why none runs. A browser
    named with ``--browser-path`` that cannot be used is an error (exit 8), not a note."""
    if not wanted:
        return None, "no browser: --no-browser"
    try:
        return check_ready(browser_path), None
    except LagscopeError as exc:
        if browser_path is not None:
            raise
        return None, f"no browser, so no browser rows: {exc.message}"


def page_figures(path: str, run: BrowserRun) -> BrowserPage:
    cold = run.load("cold")
    reload = run.load("reload")
    if cold is None or reload is None:
        raise ValueError("a browser run without its cold load and reload")
    return BrowserPage(
        path=path,
        cold_ms=cold.load_ms,
        reload_ms=reload.load_ms,
        requests=len(cold.resources),
        connections=cold.new_connections,
        reload_connections=reload.new_connections,
        setup_added_ms=setup_ms(cold, run.loads).added_ms,
        protocol=", ".join(sorted({r.protocol for r in cold.resources if r.protocol})) or None,
    )


def browse(session: BrowserSession, base_url: str) -> tuple[BrowserPage, ...]:
    """The HTML page (with its static files), then the JSON page, each in a fresh context."""
    return tuple(
        page_figures(path, session.visit(base_url.rstrip("/") + path))
        for path in (HTML_PAGE, JSON_PAGE)
    )

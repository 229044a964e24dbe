"""The ``browser`` rung of diagnose (``--browser``): a real browser loads the URL.

:class:`BrowserAsk` is what the user asked for (a browser path, an idle reload);
:func:`check_browser` finds the browser before anything is measured, so a machine without
one fails at once in one line (exit 8); :func:`run_browser` loads the page through
:mod:`lagscope.browser` inside what is left of the run's time; :func:`rung_figures` (pure)
says what the rung shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lagscope.browser.locate import BrowserChoice
from lagscope.browser.model import BrowserRun, setup_ms
from lagscope.diagnose.model import Figure

__all__ = ["BrowserAsk", "check_browser", "run_browser", "rung_figures"]

# Launching the browser and its driver takes ~1-2 s on a slow machine; less than this left
# in the run is not enough for a cold load and a reload.
_MIN_LEFT_S = 3.0
# A page load may take long on a taxed stack, but never the whole run.
_LOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BrowserAsk:
    """``--browser`` with its ``--browser-path`` and ``--browser-idle``."""

    path: str | None = None
    idle_s: float | None = None


def check_browser(ask: BrowserAsk) -> BrowserChoice:
    """The browser to drive, or a one-line LagscopeError (exit 8) saying how to get one:
    checked before the ladder starts."""
    from lagscope.browser.driver import check_ready

    return check_ready(ask.path)


def run_browser(
    url: str,
    choice: BrowserChoice,
    ask: BrowserAsk,
    left_s: float,
    timeout_s: float,
    insecure: bool,
    sleep: Callable[[float], None],
) -> tuple[BrowserRun | None, list[str]]:
    """A visit within ``left_s`` seconds of the run; the run and the notes on what did not
    fit (None when nothing did)."""
    from lagscope.browser.driver import BrowserSession

    notes: list[str] = []
    if left_s < _MIN_LEFT_S:
        return None, [f"{left_s:.1f} s of --max-time left: too little for the browser"]
    idle = ask.idle_s
    if idle is not None and idle > left_s - _MIN_LEFT_S:
        notes.append(f"no reload after {idle:g} s idle: it does not fit what is left of --max-time")
        idle = None
    budget_s = max(1.0, min(_LOAD_TIMEOUT_S, max(timeout_s, 10.0), left_s - (idle or 0.0)))
    with BrowserSession(choice, budget_s, sleep) as session:
        run = session.visit(url, idle_s=idle, ignore_https_errors=insecure)
    return run, notes


def rung_figures(run: BrowserRun) -> list[Figure]:
    """What the rung shows: per load its time and the connections it opened, and what
    the cold load's new connections added to it."""
    figures = [Figure("browser", run.browser), Figure("found_by", run.source)]
    for load in run.loads:
        key = load.label.replace(" ", "_")
        figures.append(Figure(f"{key}_load_ms", load.load_ms, "ms"))
        figures.append(Figure(f"{key}_requests", len(load.resources)))
        figures.append(Figure(f"{key}_connections_opened", load.new_connections))
        if load.label == "cold":
            setup = setup_ms(load, run.loads)
            figures.append(Figure("cold_setup_added_ms", setup.added_ms, "ms"))
            figures.append(Figure("per_connection_setup_ms", setup.per_connection_ms, "ms"))
            protocols = sorted({r.protocol for r in load.resources if r.protocol})
            figures.append(Figure("protocol", ", ".join(protocols) or None))
    return figures

"""A real Chromium loading a real page behind an independent per-connection tax."""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time

import pytest

from lagscope.browser import BrowserSession, setup_ms
from lagscope.errors import ExitCode, LagscopeError
from support.net import free_port
from support.staticsite import ASSETS
from support.taxproxy import TaxedSite

from .conftest import TAX_S

TAX_MS = TAX_S * 1000


def close_to(measured: float, expected: float) -> bool:
    """The issue's agreement rule: within 15 % or 20 ms, whichever is wider."""
    return abs(measured - expected) <= max(0.15 * expected, 20.0)


# A starved machine only ever adds time (the document's answer, the burst of five at once):
# an honest comparison tries a few side-by-side pairs and keeps the first that agrees. A
# wrong count of taxes (one, or six) never agrees, however quiet the machine.
ATTEMPTS = 5


def test_cold_load_pays_two_taxes_over_the_connections_it_opened(
    browser: BrowserSession, site: TaxedSite
) -> None:
    tried: list[object] = []
    opened_before = 0
    for _ in range(ATTEMPTS):
        run = browser.visit(f"http://127.0.0.1:{site.port}/", idle_s=1.0)
        opened_total, held_each, _ = site.stats()
        opened, opened_before = opened_total - opened_before, opened_total
        cold = run.load("cold")
        assert cold is not None
        assert len(cold.resources) == 1 + len(ASSETS)
        # The browser's own count of new connections is what reached the server.
        assert cold.new_connections == opened
        assert 2 <= opened <= 6
        assert min(held_each) >= TAX_MS
        held = statistics.median(held_each)
        setup = setup_ms(cold, run.loads)
        tried.append((cold.load_ms, setup, held))
        # The load: what the new connections added to it is two holds (the document's, then
        # the assets' parallel ones), and the rest of it is less than one.
        if close_to(setup.added_ms, 2 * held) and cold.load_ms - setup.added_ms < held:
            break
    else:
        pytest.fail(f"no attempt agreed with two holds: {tried}")
    assert held - 20 <= setup.per_connection_ms <= 1.5 * held, setup
    assert all(r.status == 200 for r in cold.resources)
    assert {r.protocol for r in cold.resources} == {"http/1.1"}
    doc = cold.document
    assert doc is not None and [m.name for m in doc.server_timing] == ["app"]
    # The reload revalidates the document on a connection the cold load opened.
    reload = run.load("reload")
    assert reload is not None and reload.new_connections == 0
    # It paid no setup (its time on a starved machine is whatever the machine gives).
    assert setup_ms(reload, run.loads).added_ms == 0.0
    assert reload.load_ms < cold.load_ms
    idle = run.load("idle reload")
    assert idle is not None and idle.idle_s == 1.0
    assert run.idle_rule is not None and "inside" in run.idle_rule
    # The reloads opened nothing the browser did not count.
    assert site.stats()[0] == opened_before


def test_load_hooks_bracket_each_load(browser: BrowserSession, site: TaxedSite) -> None:
    """What a benchmark measures around one load alone: called with the load's label just
    before it starts and once the browser has reported it."""
    seen: list[tuple[str, str, float]] = []
    run = browser.visit(
        f"http://127.0.0.1:{site.port}/",
        before_load=lambda label: seen.append(("before", label, time.perf_counter())),
        after_load=lambda label: seen.append(("after", label, time.perf_counter())),
    )
    assert [(when, label) for when, label, _ in seen] == [
        ("before", "cold"),
        ("after", "cold"),
        ("before", "reload"),
        ("after", "reload"),
    ]
    for (_, label, start), (_, _, end) in zip(seen[::2], seen[1::2], strict=True):
        load = run.load(label)
        assert load is not None
        # The whole load, navigation start to the load event's end, falls inside.
        assert (end - start) * 1000 >= load.load_ms - 1.0, (label, load.load_ms)


def test_refused_page_is_one_line_exit_4(browser: BrowserSession) -> None:
    with pytest.raises(LagscopeError) as err:
        browser.visit(f"http://127.0.0.1:{free_port()}/", reload=False)
    assert err.value.exit_code == ExitCode.CONNECT
    assert "\n" not in err.value.one_line()


def test_without_the_extra_the_error_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['playwright'] = None; sys.modules['playwright.sync_api'] = None\n"
        "from lagscope.browser import load_page\n"
        "from lagscope.errors import LagscopeError\n"
        "try:\n    load_page('http://127.0.0.1:9/')\n"
        "except LagscopeError as e:\n    print(int(e.exit_code), e.one_line())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.startswith("8 browser: the browser extra is not installed")
    assert "lagscope[browser]" in out


def test_an_interrupted_calls_late_answer_is_not_printed() -> None:
    """After Ctrl+C interrupts a Playwright call, its answer arrives with nobody waiting and
    Playwright logs a traceback; the session drops that record and no other."""
    from lagscope.browser.driver import _drop_stale_answers

    def record(error: BaseException | None) -> logging.LogRecord:
        exc_info = (type(error), error, None) if error is not None else None
        return logging.LogRecord(
            "playwright",
            logging.ERROR,
            __file__,
            1,
            "Error occurred in event listener",
            (),
            exc_info,
        )

    assert not _drop_stale_answers(record(Exception("Cannot find command to respond: ab@47")))
    assert _drop_stale_answers(record(Exception("Target page, context or browser has been closed")))
    assert _drop_stale_answers(record(None))

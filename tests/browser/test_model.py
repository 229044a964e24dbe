"""The browser model from what a browser reports (entries shaped as Chromium gives them)."""

from __future__ import annotations

from typing import Any

import pytest

from lagscope.browser.model import (
    CHROME_IDLE_UNUSED_S,
    CHROME_IDLE_USED_S,
    BrowserRun,
    build_load,
    idle_rule,
    run_from_dict,
    run_to_dict,
    setup_ms,
)

TAX = 300.0


def entry(
    name: str,
    start: float,
    request: float,
    first: float,
    end: float,
    kind: str = "link",
    connect: tuple[float, float] | None = None,
    transfer: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "name": name,
        "initiatorType": kind,
        "startTime": start,
        "fetchStart": start,
        "domainLookupStart": connect[0] if connect else start,
        "domainLookupEnd": connect[0] if connect else start,
        "connectStart": connect[0] if connect else start,
        "connectEnd": connect[1] if connect else start,
        "secureConnectionStart": 0,
        "requestStart": request,
        "responseStart": first,
        "responseEnd": end,
        "transferSize": transfer,
        "encodedBodySize": 100,
        "nextHopProtocol": "http/1.1",
        "responseStatus": 200,
        "serverTiming": [],
    }
    e.update(extra)
    return e


def response(url: str, conn: int) -> dict[str, Any]:
    return {"url": url, "connectionId": conn, "connectionReused": False, "status": 200}


def cold_page() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A document on connection 1 paying the tax, then six assets: five on new connections
    paying it in parallel, one reusing the document's connection."""
    nav = entry(
        "http://h/",
        0,
        2,
        2 + TAX + 5,
        2 + TAX + 6,
        kind="navigation",
        serverTiming=[{"name": "app", "duration": 5.0, "description": ""}],
        loadEventEnd=700.0,
        domContentLoadedEventEnd=650.0,
    )
    res = [entry("http://h/a0.css", 320, 321, 323, 324)]
    for i in range(1, 6):
        res.append(
            entry(f"http://h/a{i}.css", 320, 322, 322 + TAX + 2, 322 + TAX + 3, connect=(320, 322))
        )
    res.append(entry("http://h/favicon.ico", 720, 721, 722, 723, kind="other"))
    responses = [response("http://h/", 1), response("http://h/a0.css", 1)]
    responses += [response(f"http://h/a{i}.css", 1 + i) for i in range(1, 6)]
    return nav, res, responses


def test_build_load_marks_new_and_reused_connections() -> None:
    nav, res, responses = cold_page()
    load, seen = build_load("cold", nav, res, responses)
    assert load.load_ms == 700.0
    assert load.dom_content_loaded_ms == 650.0
    # The favicon came after the load event: not part of the load.
    assert [r.url for r in load.resources][-1] == "http://h/a5.css"
    assert load.document is not None and load.document.kind == "navigation"
    assert load.document.server_timing[0].name == "app"
    assert load.document.server_timing[0].dur_ms == 5.0
    assert load.connections == 6
    assert load.new_connections == 6
    reuse = [r for r in load.resources if r.reused]
    assert [r.url for r in reuse] == ["http://h/a0.css"]
    assert seen == frozenset(range(1, 7))
    a1 = load.resources[2]
    assert a1.connect_ms == 2.0
    assert a1.wait_ms == pytest.approx(TAX + 2)


def test_setup_prices_parallel_connections_once() -> None:
    nav, res, responses = cold_page()
    load, _ = build_load("cold", nav, res, responses)
    setup = setup_ms(load)
    # Two waves: the document's tax, then five parallel ones counted once.
    assert setup.connections == 6
    assert setup.added_ms == pytest.approx(2 * TAX + 2 + 5 + 2, abs=3)
    assert setup.per_connection_ms == pytest.approx(TAX + 2, abs=3)


def test_a_later_load_reuses_what_an_earlier_one_opened() -> None:
    nav, res, responses = cold_page()
    _, seen = build_load("cold", nav, res, responses)
    again = entry("http://h/", 0, 1, 8, 9, kind="navigation", loadEventEnd=60.0)
    cached = entry("http://h/a1.css", 20, 0, 0, 21, transfer=0)
    reload, _ = build_load("reload", again, [cached], [response("http://h/", 1)], seen)
    assert reload.new_connections == 0
    assert reload.resources[0].reused
    assert reload.resources[1].from_cache and reload.resources[1].connection_id is None
    assert setup_ms(reload).added_ms == 0.0


def test_document_baseline_comes_from_its_reused_fetch() -> None:
    nav, res, responses = cold_page()
    cold, seen = build_load("cold", nav, res, responses)
    again = entry("http://h/", 0, 1, 6, 7, kind="navigation", loadEventEnd=60.0)
    reload, _ = build_load("reload", again, [], [response("http://h/", 1)], seen)
    # The document takes 5 ms on a reused connection: its tax is TTFB minus that.
    with_base = setup_ms(cold, (cold, reload))
    assert with_base.added_ms == pytest.approx(setup_ms(cold).added_ms - 5, abs=1)


def test_hostile_numbers_do_not_escape() -> None:
    nav = {
        "name": "http://h/",
        "startTime": float("nan"),
        "responseEnd": "x",
        "loadEventEnd": 1e300,
    }
    load, _ = build_load("cold", nav, [{"serverTiming": [1, {"name": 3}]}], [{"url": None}])
    assert load.load_ms == 0.0
    assert all(r.wait_ms >= 0 and r.receive_ms >= 0 for r in load.resources)


def test_json_round_trip() -> None:
    nav, res, responses = cold_page()
    load, _ = build_load("cold", nav, res, responses)
    run = BrowserRun("chromium 156", "PATH", "http://h/", (load,), idle_rule(12))
    back = run_from_dict(run_to_dict(run))
    assert back == run


def test_idle_rule_names_the_limit_crossed() -> None:
    assert "inside" in idle_rule(CHROME_IDLE_UNUSED_S - 1)
    assert "never carried a request" in idle_rule(CHROME_IDLE_UNUSED_S + 2)
    assert "every connection is closed" in idle_rule(CHROME_IDLE_USED_S)


def test_saved_urls_carry_no_secret() -> None:
    nav, res, responses = cold_page()
    secret = "http://u:hunter2@h/?token=SECRETTOKEN&page=2"
    nav["name"] = secret
    res[0]["name"] = secret + "&x=1"
    responses[0]["url"] = secret
    responses[1]["url"] = secret + "&x=1"
    load, _ = build_load("cold", nav, res, responses)
    saved = str(run_to_dict(BrowserRun("chromium 156", "PATH", secret, (load,), idle_rule(12))))
    assert "hunter2" not in saved
    assert "SECRETTOKEN" not in saved
    assert "page=2" in saved  # what is not secret stays

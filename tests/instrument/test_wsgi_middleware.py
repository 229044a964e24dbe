"""WsgiServerTimingMiddleware around a bare WSGI app, behind real waitress."""

from __future__ import annotations

import http.client
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

import pytest

from lagscope.instrument import OptionsError, sampling
from lagscope.instrument.profile import PROFILE_HEADER, Profile, hotspots
from lagscope.instrument.profile import parse_header as parse_profile
from lagscope.instrument.servertiming import Metric, parse_headers, unescape_text
from lagscope.instrument.wsgi import WsgiServerTimingMiddleware
from support.net import get
from support.wsgi import waitress_server


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(0.2)
    body = b"hello"
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    if environ["PATH_INFO"] == "/own":
        headers.append(("Server-Timing", "cache;desc=hit"))
    start_response("200 OK", headers)
    return [body]


def metrics(response: http.client.HTTPResponse) -> dict[str, Metric]:
    values = response.headers.get_all("Server-Timing") or []
    assert values, "no Server-Timing header"
    return {m.name: m for m in parse_headers(values)}


def test_total_conn_queue_thread_through_waitress() -> None:
    with waitress_server(WsgiServerTimingMiddleware(app), threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        other = http.client.HTTPConnection(host, port, timeout=10)
        try:
            first = metrics(get(conn, "/sleep"))
            second = metrics(get(conn, "/", {"X-Request-Start": f"t={time.time() - 0.25:.3f}"}))
            third = metrics(get(other, "/"))
        finally:
            conn.close()
            other.close()
    assert first["conn"].desc == "new" and second["conn"].desc == "reused"
    assert third["conn"].desc == "new"
    assert first["total"].dur_ms is not None and 195 <= first["total"].dur_ms <= 2000
    assert second["queue"].dur_ms is not None and 240 <= second["queue"].dur_ms <= 1250
    assert "queue" not in first
    assert first["thread"].desc is not None and first["thread"].desc.startswith("waitress")
    # No database hooks in plain WSGI.
    assert not {"db", "dbconn", "view", "tpl"} & set(first)


def test_disclosure_through_waitress() -> None:
    wrapped = WsgiServerTimingMiddleware(app, untrusted="total", secret="k3y")
    with waitress_server(wrapped, threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            outsider = get(conn, "/", {"X-Real-IP": "203.0.113.9"})
            with_secret = get(conn, "/", {"X-Real-IP": "203.0.113.9", "X-Lagscope-Token": "k3y"})
        finally:
            conn.close()
    assert list(metrics(outsider)) == ["total"]
    assert "conn" in metrics(with_secret)
    silent = WsgiServerTimingMiddleware(app, trust_loopback=False)
    with waitress_server(silent, threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            response = get(conn, "/")
        finally:
            conn.close()
    assert response.status == 200 and response.getheader("Server-Timing") is None


def _call(wsgi: Any, path: str = "/", **environ: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    env = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555", "PATH_INFO": path, **environ}
    body = b"".join(wsgi(env, start_response))
    return seen["status"], seen["headers"], body


def test_app_header_kept_and_ours_added() -> None:
    _, headers, _ = _call(WsgiServerTimingMiddleware(app), "/own")
    values = [v for k, v in headers if k == "Server-Timing"]
    assert values[0] == "cache;desc=hit"
    assert {m.name for m in parse_headers(values)} >= {"cache", "total"}


def test_bad_options_fail_at_startup() -> None:
    with pytest.raises(OptionsError, match="unknown key"):
        WsgiServerTimingMiddleware(app, no_such_option=True)
    with pytest.raises(OptionsError, match="UNTRUSTED"):
        WsgiServerTimingMiddleware(app, untrusted="everything")


@pytest.mark.parametrize("fail_on_call", [1, 2])
def test_instrumentation_failure_leaves_response_alone(fail_on_call: int) -> None:
    calls = {"n": 0}

    def clock() -> float:
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise RuntimeError("clock broke")
        return time.perf_counter()

    reference = _call(app)
    wrapped = WsgiServerTimingMiddleware(app, clock=clock)
    status, headers, body = _call(wrapped)
    assert (status, body) == (reference[0], reference[2])
    assert [h for h in headers if h[0] != "Server-Timing"] == reference[1]
    assert not any(h[0] == "Server-Timing" for h in headers)
    assert wrapped.failures.count == 1
    assert "WsgiServerTimingMiddleware" in repr(wrapped)


def test_exc_info_is_passed_on() -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"err"]

    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got["exc_info"] = exc_info
        return lambda data: None

    environ = {"REMOTE_ADDR": "127.0.0.1", "PATH_INFO": "/"}
    assert list(WsgiServerTimingMiddleware(failing)(environ, start_response)) == [b"err"]
    assert got["exc_info"][0] is ValueError


def renaming_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    # Any app may name its worker thread; the header must still encode.
    threading.current_thread().name = urllib.parse.unquote(environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.parametrize("name", ["arrow→", "tab\there", 'quote"and\\back', "emoji😀"])
def test_thread_name_outside_latin1_never_changes_the_response(name: str) -> None:
    wrapped = WsgiServerTimingMiddleware(renaming_app)
    with waitress_server(wrapped, threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            responses = []
            for _ in range(3):
                conn.request("GET", "/?" + urllib.parse.quote(name))
                response = conn.getresponse()
                responses.append((response.status, response.read(), response.headers))
        finally:
            conn.close()
    assert [(status, body) for status, body, _ in responses] == [(200, b"ok")] * 3
    later = responses[-1][2].get_all("Server-Timing") or []
    assert all(value.isascii() for value in later)
    thread_desc = {m.name: m for m in parse_headers(later)}["thread"].desc
    assert thread_desc is not None and unescape_text(thread_desc) == name
    assert wrapped.failures.count == 0


# --- profile mode -----------------------------------------------------------------------------


def slow_helper() -> None:
    time.sleep(0.2)


def helper_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    slow_helper()
    body = b"sampled" if sys.getprofile() is not None else b"not sampled"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def ask(address: tuple[str, int], headers: dict[str, str]) -> tuple[str | None, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        return response.getheader(PROFILE_HEADER), response.read()
    finally:
        conn.close()


def test_profile_mode_names_the_helper_for_a_trusted_client_that_asks() -> None:
    wrapped = WsgiServerTimingMiddleware(helper_app, profile=True)
    with waitress_server(wrapped, threads=1) as address:
        header, body = ask(address, {PROFILE_HEADER: "1"})
        plain_header, plain_body = ask(address, {})
    assert body == b"sampled" and header is not None
    profile = parse_profile(header)
    assert isinstance(profile, Profile)
    top = hotspots(profile)[0]
    assert top.function == "slow_helper" and 150 <= top.ms <= 250
    assert (plain_header, plain_body) == (None, b"not sampled")


def test_profile_mode_off_by_default_and_never_for_untrusted_clients() -> None:
    with waitress_server(WsgiServerTimingMiddleware(helper_app), threads=1) as address:
        off = ask(address, {PROFILE_HEADER: "1"})
    untrusted = WsgiServerTimingMiddleware(helper_app, profile=True, trust_loopback=False)
    with waitress_server(untrusted, threads=1) as address:
        refused = ask(address, {PROFILE_HEADER: "1"})
    assert off == ("none off", b"not sampled")
    assert refused == (None, b"not sampled")


def test_without_the_extra_the_trusted_client_is_told_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # An import of a module set to None in sys.modules fails as if it were not installed.
    monkeypatch.setitem(sys.modules, "pyinstrument", None)
    sampling.available.cache_clear()
    try:
        wrapped = WsgiServerTimingMiddleware(helper_app, profile=True)
        with waitress_server(wrapped, threads=1) as address:
            got = ask(address, {PROFILE_HEADER: "1"})
    finally:
        sampling.available.cache_clear()
    assert got == ("none no-pyinstrument", b"not sampled")

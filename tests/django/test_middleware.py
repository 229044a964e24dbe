"""The Django middleware in process (Django's test clients): metrics, disclosure, failures,
the async path."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
from django.http import HttpResponse, HttpResponseBase
from django.test import AsyncClient, Client, override_settings

from lagscope.django.middleware import ServerTimingMiddleware
from lagscope.instrument.record import parse_dbshapes
from lagscope.instrument.servertiming import Metric, parse, unescape_text

MW = "lagscope.django.middleware.ServerTimingMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"


def metrics(response: HttpResponseBase) -> dict[str, Metric]:
    assert response.has_header("Server-Timing"), "no Server-Timing header"
    return {m.name: m for m in parse(response["Server-Timing"])}


def test_full_header_for_a_loopback_client() -> None:
    m = metrics(Client().get("/plain/"))
    assert {"total", "view", "thread"} <= set(m)
    assert m["total"].dur_ms is not None and m["total"].dur_ms > 0


@pytest.mark.django_db
def test_queries_are_counted_and_timed() -> None:
    m = metrics(Client().get("/db/default/?n=3"))
    assert m["db"].desc == "3 queries"
    assert m["db"].dur_ms is not None and m["total"].dur_ms is not None
    assert 0 < m["db"].dur_ms <= m["total"].dur_ms
    # The test client keeps the connection open between requests: no connect.
    assert "dbconn" not in metrics(Client().get("/db/default/?n=1"))


def test_template_response_rendering_is_timed_apart_from_the_view() -> None:
    m = metrics(Client().get("/tpl/"))
    assert m["tpl"].dur_ms is not None and m["view"].dur_ms is not None
    assert m["total"].dur_ms is not None
    assert m["tpl"].dur_ms + m["view"].dur_ms <= m["total"].dur_ms + 0.01


def test_existing_server_timing_is_kept() -> None:
    header = Client().get("/own/")["Server-Timing"]
    assert header.startswith("cache;desc=hit, total;dur=")


@pytest.mark.parametrize(
    ("client_kwargs", "lagscope", "expected"),
    [
        ({"REMOTE_ADDR": "203.0.113.9"}, {}, None),
        ({"REMOTE_ADDR": "203.0.113.9"}, {"UNTRUSTED": "total"}, ["total"]),
        ({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}, {}, None),
        ({"REMOTE_ADDR": "127.0.0.1"}, {"TRUST_LOOPBACK": False}, None),
        ({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_LAGSCOPE_TOKEN": "k3y"}, {"SECRET": "k3y"}, "full"),
        ({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_LAGSCOPE_TOKEN": "nope"}, {"SECRET": "k3y"}, None),
        ({"REMOTE_ADDR": "127.0.0.1"}, {"ENABLED": False}, None),
    ],
)
def test_disclosure(
    client_kwargs: dict[str, str], lagscope: dict[str, object], expected: object
) -> None:
    with override_settings(LAGSCOPE=lagscope):
        response = Client().get("/plain/", **client_kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.content == b"ok"
    if expected is None:
        assert not response.has_header("Server-Timing")
    elif expected == "full":
        assert "view" in metrics(response)
    else:
        assert list(metrics(response)) == expected


def test_internal_ips_and_debug_are_trusted() -> None:
    outsider = {"REMOTE_ADDR": "203.0.113.9"}
    with override_settings(INTERNAL_IPS=["203.0.113.9"]):
        assert "view" in metrics(Client().get("/plain/", **outsider))  # type: ignore[arg-type]
    with override_settings(INTERNAL_IPS=["203.0.113.9"], LAGSCOPE={"TRUST_INTERNAL_IPS": False}):
        assert not Client().get("/plain/", **outsider).has_header("Server-Timing")  # type: ignore[arg-type]
    with override_settings(DEBUG=True):
        assert "view" in metrics(Client().get("/plain/", **outsider))  # type: ignore[arg-type]


@pytest.mark.django_db
def test_sql_and_settings_never_leak() -> None:
    with override_settings(LAGSCOPE={"SECRET": "top-secret-value"}, DEBUG=True):
        header = Client().get("/db/default/?n=1").get("Server-Timing", "")
    assert "SELECT" not in header.upper()
    assert "top-secret-value" not in header


def test_queue_time_in_process() -> None:
    started = f"t={time.time() - 0.3:.3f}"
    m = metrics(Client().get("/plain/", HTTP_X_REQUEST_START=started))
    assert m["queue"].dur_ms is not None and 290 <= m["queue"].dur_ms <= 1300
    with override_settings(LAGSCOPE={"QUEUE_HEADER": ""}):
        m = metrics(Client().get("/plain/", HTTP_X_REQUEST_START=started))
    assert "queue" not in m
    # Garbage in the header costs nothing but the metric.
    response = Client().get("/plain/", HTTP_X_REQUEST_START="t=yesterday")
    assert response.status_code == 200 and "queue" not in metrics(response)


# -- failures inside the instrumentation never change the response ------------------


def _bare(response: HttpResponseBase) -> tuple[int, bytes, dict[str, str]]:
    assert isinstance(response, HttpResponse)  # not streaming: the body can be compared
    headers = {k: v for k, v in response.items() if k != "Server-Timing"}
    return response.status_code, response.content, headers


@pytest.mark.parametrize(
    "broken",
    [
        {"LAGSCOPE": {"UNTRUSTED": 42}},  # an invalid setting
        {"LAGSCOPE": "not a dict"},
        {"MIDDLEWARE": ["django_test_urls.FailsAtEntry", COMMON]},
        {"MIDDLEWARE": ["django_test_urls.FailsAtExit", COMMON]},
    ],
)
@pytest.mark.parametrize("path", ["/plain/", "/tpl/", "/boom/"])
def test_instrumentation_errors_do_not_change_responses(
    broken: dict[str, object], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A client builds its middleware chain on first use: one client per configuration.
    with override_settings(MIDDLEWARE=[COMMON]):
        reference = Client(raise_request_exception=False).get(path)
    with override_settings(**broken), caplog.at_level(logging.DEBUG, logger="lagscope"):
        response = Client(raise_request_exception=False).get(path)
    assert _bare(response) == _bare(reference)
    if response.has_header("Server-Timing"):
        # A part that failed is missing; what is there still parses and has `total`.
        assert "total" in metrics(response)
    assert any(r.name == "lagscope" and r.exc_info for r in caplog.records)


def test_view_exceptions_pass_through_untouched() -> None:
    with pytest.raises(ValueError, match="the view failed"):
        Client().get("/boom/")
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    # Django turned the exception into a 500 inside the middleware: it is still timed.
    assert "total" in metrics(response)


def test_repr_and_modes() -> None:
    sync = ServerTimingMiddleware(lambda request: HttpResponse())

    async def endpoint(request: object) -> HttpResponse:
        return HttpResponse()

    asynchronous = ServerTimingMiddleware(endpoint)
    assert "sync" in repr(sync) and "async" in repr(asynchronous)
    assert asyncio.iscoroutinefunction(asynchronous.process_view)
    assert asyncio.iscoroutinefunction(asynchronous.process_template_response)
    assert not asyncio.iscoroutinefunction(sync.process_view)
    # Django names a hook's class through __self__ when it complains about a hook's result.
    for hook in (asynchronous.process_view, asynchronous.process_template_response):
        assert getattr(hook, "__self__", None) is asynchronous


# -- the async path ------------------------------------------------------------------


def test_async_client_gets_the_header() -> None:
    async def run() -> tuple[HttpResponseBase, HttpResponseBase]:
        client = AsyncClient()
        return await client.get("/async/"), await client.get("/tpl/")

    plain, tpl = asyncio.run(run())
    assert isinstance(plain, HttpResponse)
    assert plain.content == b"async ok"
    m = metrics(plain)
    assert {"total", "view", "thread"} <= set(m)
    assert "tpl" in metrics(tpl)


@pytest.mark.django_db
def test_async_view_queries_are_counted() -> None:
    async def run() -> HttpResponseBase:
        return await AsyncClient().get("/async-db/default/")

    m = metrics(asyncio.run(run()))
    assert m["db"].desc == "3 queries"


@pytest.mark.django_db
def test_statement_shapes_count_repeats_of_one_query() -> None:
    m = metrics(Client().get("/repeated/?n=6"))
    assert m["db"].desc == "7 queries"
    assert m["dbshapes"].desc == "2 shapes, max 6 repeats"
    assert parse_dbshapes(m["dbshapes"].desc) == (2, 6)
    # dur is the time of the repeated shape alone: part of db.
    assert m["dbshapes"].dur_ms is not None and m["db"].dur_ms is not None
    assert 0 < m["dbshapes"].dur_ms <= m["db"].dur_ms
    single = metrics(Client().get("/db/default/?n=1"))
    assert single["dbshapes"].desc == "1 shape, max 1 repeat"
    assert "SELECT" not in Client().get("/repeated/?n=2")["Server-Timing"]


@pytest.mark.parametrize("name", ["arrow→", "ünïcode", "ctrl\x07"])
def test_thread_name_outside_latin1_is_escaped_not_mime_encoded(name: str) -> None:
    thread = threading.current_thread()
    saved = thread.name
    thread.name = name
    try:
        response = Client().get("/plain/")
    finally:
        thread.name = saved
    assert response.status_code == 200
    value = response["Server-Timing"]
    assert value.isascii() and "=?utf-8?" not in value
    desc = metrics(response)["thread"].desc
    assert desc is not None and unescape_text(desc) == name

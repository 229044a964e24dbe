"""``LagscopePanel`` with django-debug-toolbar's own test pattern (a ``DebugToolbar`` over a
RequestFactory request, ``panel.process_request`` then ``generate_stats`` then ``content``),
inside lagscope's real middleware, on SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from debug_toolbar.toolbar import DebugToolbar
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from lagscope.contrib.debug_toolbar import LagscopePanel
from lagscope.django.middleware import ServerTimingMiddleware

pytestmark = pytest.mark.usefixtures("unblocked_db")

PANEL = "lagscope.contrib.debug_toolbar.LagscopePanel"
MW = "lagscope.django.middleware.ServerTimingMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"


def _view(alias: str | None) -> Callable[[HttpRequest], HttpResponse]:
    def view(request: HttpRequest) -> HttpResponse:
        if alias is not None:
            with connections[alias].cursor() as cursor:
                for i in range(3):
                    cursor.execute("SELECT %s", [i])
        return HttpResponse("ok")

    return view


def _run(
    view: Callable[[HttpRequest], HttpResponse],
    middleware: ServerTimingMiddleware | None,
    port: str = "50000",
) -> tuple[LagscopePanel, HttpResponse]:
    panels: list[LagscopePanel] = []

    def toolbar_layer(request: HttpRequest) -> HttpResponse:
        # What DebugToolbarMiddleware does for one panel, as the toolbar's tests do it.
        # The toolbar is untyped: Any keeps mypy strict out of its internals.
        get_response: Any = view
        toolbar: Any = DebugToolbar(request, get_response)
        panel: Any = toolbar.get_panel_by_id(LagscopePanel.panel_id)
        panel.enable_instrumentation()
        response = panel.process_request(request)
        panel.generate_stats(request, response)
        panel.disable_instrumentation()
        panels.append(panel)
        assert isinstance(response, HttpResponse)
        return response

    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", REMOTE_PORT=port)
    outer = middleware if middleware is not None else toolbar_layer
    if middleware is not None:
        middleware.get_response = toolbar_layer
    response = outer(request)
    return panels[0], response


@override_settings(DEBUG_TOOLBAR_PANELS=[PANEL], MIDDLEWARE=[MW, COMMON])
def test_panel_shows_the_record_connection_thread_and_checks(
    make_alias: Any, engine_settings: dict[str, Any]
) -> None:
    middleware = ServerTimingMiddleware(lambda r: HttpResponse())
    with make_alias("tb", {**engine_settings, "CONN_MAX_AGE": 0}):
        panel, response = _run(_view("tb"), middleware)
        second, _ = _run(_view(None), middleware)
    stats = panel.stats()
    by_name = {m["name"]: m for m in stats["metrics"]}
    assert by_name["db"]["desc"] == "3 queries"
    assert by_name["dbshapes"]["desc"] == "1 shape, max 3 repeats"
    assert by_name["dbconn"]["desc"] == "1 connect"
    assert stats["dbconn_ms"] == pytest.approx(by_name["dbconn"]["dur_ms"])
    assert stats["connection"] == "new" and second.stats()["connection"] == "reused"
    assert stats["thread"] == threading.current_thread().name
    # The panel read the record before the middleware finished: the header agrees.
    assert "dbconn;dur=" in response["Server-Timing"]
    content = str(panel.content)
    assert "<code>dbconn</code>" in content and "1 connect" in content
    assert "<strong>new</strong>" in content
    if engine_settings["ENGINE"].endswith("postgresql"):
        # CONN_MAX_AGE=0 on a network database: the check that explains the dbconn row.
        assert "lagscope.W001" in content
    else:
        assert "No lagscope check fires" in content
    assert "ms" in panel.nav_subtitle and "conn new" in panel.nav_subtitle


@override_settings(DEBUG_TOOLBAR_PANELS=[PANEL], MIDDLEWARE=[COMMON, MW])
def test_panel_lists_the_checks_that_fire() -> None:
    panel, _ = _run(_view(None), ServerTimingMiddleware(lambda r: HttpResponse()))
    ids = {c["id"] for c in panel.stats()["checks"]}
    assert "lagscope.W006" in ids  # the middleware is not first
    assert "lagscope.W006" in str(panel.content)


@override_settings(DEBUG_TOOLBAR_PANELS=[PANEL], MIDDLEWARE=[COMMON])
def test_panel_without_the_middleware_says_so() -> None:
    panel, _ = _run(_view(None), None)
    assert panel.stats()["active"] is False
    assert panel.nav_subtitle == "middleware not active"
    content = str(panel.content)
    assert "did not time this request" in content and "lagscope.W008" in content


@override_settings(DEBUG_TOOLBAR_PANELS=[PANEL], MIDDLEWARE=[MW, COMMON])
def test_stats_are_plain_json_for_the_toolbar_history() -> None:
    import json

    panel, _ = _run(_view(None), ServerTimingMiddleware(lambda r: HttpResponse()))
    assert json.loads(json.dumps(panel.stats())) == panel.stats()

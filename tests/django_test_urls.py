"""URLs and views the Django instrumentation tests request (ROOT_URLCONF of the suite)."""

from __future__ import annotations

import asyncio
import sys
import time

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def sleepy(request: HttpRequest) -> HttpResponse:
    time.sleep(float(request.GET.get("s", "0.2")))
    return HttpResponse("slept")


def slow_helper(seconds: float) -> None:
    time.sleep(seconds)


def calls_helper(request: HttpRequest) -> HttpResponse:
    # The profile must name slow_helper, not only this view.
    slow_helper(float(request.GET.get("s", "0.2")))
    return HttpResponse("helped")


def sampled(request: HttpRequest) -> HttpResponse:
    # Whether a profiler samples this request (pyinstrument sets the profile function).
    return HttpResponse("sampled" if sys.getprofile() is not None else "not sampled")


def queries(request: HttpRequest, alias: str) -> HttpResponse:
    count = int(request.GET.get("n", "2"))
    with connections[alias].cursor() as cursor:
        for _ in range(count):
            cursor.execute("SELECT 1")
    return HttpResponse(f"{count} queries")


def slow_query(request: HttpRequest, alias: str) -> HttpResponse:
    # A fast view whose one query is slow (PostgreSQL sleeps ``s`` seconds in it).
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [float(request.GET.get("s", "0.15"))])
    return HttpResponse("slow query")


def big_json(request: HttpRequest) -> HttpResponse:
    # A large JSON body (``kb`` kilobytes), made without work worth timing.
    kb = int(request.GET.get("kb", "1000"))
    row = b'{"id": 1234567, "name": "an item of the list", "ok": true},'
    body = b"[" + row * (kb * 1000 // len(row)) + b'{"end": true}]'
    return HttpResponse(body, content_type="application/json")


def repeated(request: HttpRequest) -> HttpResponse:
    # The N+1 shape: one query, then the same statement once per row with other values
    # (and IN lists of varying length, which are still one shape).
    count = int(request.GET.get("n", "5"))
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        for i in range(count):
            cursor.execute(
                "SELECT %s WHERE 1 IN (" + ", ".join(["%s"] * (i + 1)) + ")", [i, *range(i + 1)]
            )
    return HttpResponse(f"{count + 1} queries")


def template(request: HttpRequest) -> TemplateResponse:
    return TemplateResponse(request, "lagscope_test.html", {"items": range(50)})


def with_own_header(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("own")
    response["Server-Timing"] = "cache;desc=hit"
    return response


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("the view failed")


async def async_plain(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse("async ok")


def _select(alias: str, count: int) -> None:
    with connections[alias].cursor() as cursor:
        for _ in range(count):
            cursor.execute("SELECT 1")


async def async_queries(request: HttpRequest, alias: str) -> HttpResponse:
    await sync_to_async(_select)(alias, 3)
    return HttpResponse("async queries")


urlpatterns = [
    path("plain/", plain),
    path("sleep/", sleepy),
    path("helper/", calls_helper),
    path("sampled/", sampled),
    path("db/<str:alias>/", queries),
    path("tpl/", template),
    path("repeated/", repeated),
    path("slowsql/<str:alias>/", slow_query),
    path("big/", big_json),
    path("own/", with_own_header),
    path("boom/", boom),
    path("async/", async_plain),
    path("async-db/<str:alias>/", async_queries),
]


def close_connection(request: HttpRequest, alias: str) -> HttpResponse:
    # Lets a test close the server thread's persistent connection before shutdown.
    connections[alias].close()
    return HttpResponse("closed")


urlpatterns.append(path("close/<str:alias>/", close_connection))


class _BrokenClock:
    """A clock that works for the first call of each request and then fails."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:
            raise RuntimeError("clock broke")
        return time.perf_counter()


def _failing_clock() -> float:
    raise RuntimeError("clock broke")


def _make_broken_middlewares() -> tuple[type, type]:
    from lagscope.django.middleware import ServerTimingMiddleware

    class FailsAtEntry(ServerTimingMiddleware):
        clock = staticmethod(_failing_clock)

    class FailsAtExit(ServerTimingMiddleware):
        clock = _BrokenClock()

    return FailsAtEntry, FailsAtExit


FailsAtEntry, FailsAtExit = _make_broken_middlewares()

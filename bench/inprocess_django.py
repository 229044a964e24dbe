"""A minimal Django project called in process (no HTTP) for the middleware benchmarks: its
settings, one ``/hello/`` view and the WSGI environ of a plain GET to it."""

from __future__ import annotations

import sys
from typing import Any

import django
from django.conf import settings

COMMON = "django.middleware.common.CommonMiddleware"
LAGSCOPE_MW = "lagscope.django.middleware.ServerTimingMiddleware"


def hello(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("hello")


urlpatterns: list[Any] = []


def configure(middleware: list[str]) -> None:
    """Settings with this module as the URLconf, then ``django.setup()``."""
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["lagscope.django"],
        MIDDLEWARE=middleware,
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.urls import path

    urlpatterns.append(path("hello/", hello))


def environ(remote_addr: str = "127.0.0.1") -> dict[str, Any]:
    """The WSGI environ of ``GET /hello/`` from ``remote_addr`` (no ``wsgi.input``: each
    request gets its own)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/hello/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

"""Small WSGI apps for the serve tests (also served as ``wsgi_apps:app`` by a subprocess)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]


def unsized(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    """A generator body without Content-Length (what makes waitress close)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"hello "
    yield b"world"


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/slow?ms=N`` sleeps N ms then answers unsized; ``/pid`` names the serving process;
    ``/remote`` shows the client address the server believes and any X-Forwarded-For it
    passed on; anything else says hello."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("PATH_INFO") == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if environ.get("PATH_INFO") == "/remote":
        seen = f"{environ.get('REMOTE_ADDR')} {environ.get('HTTP_X_FORWARDED_FOR', '-')}"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [seen.encode()]
    if environ.get("PATH_INFO") == "/slow":
        print("slow request started", flush=True)  # the test's signal that it is in flight
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)
    return unsized(environ, start_response)

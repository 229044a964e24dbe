"""The child processes bench_serve.py starts: the hand-tuned waitress stack, the tax proxy, the
in-process timing client, database preparation, and the gunicorn WSGI factory.

Run as ``python bench/bench_serve.py _MODE ARGS`` (see :func:`run_child`); gunicorn imports
``serve_children:make_app()`` with ``bench/`` as its working directory.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PATH = "/api/items/"

# The hand-tuned waitress settings from the original report, verbatim.
SEED_WAITRESS: dict[str, Any] = {
    "threads": 4,
    "connection_limit": 200,
    "channel_timeout": 3600,
    "cleanup_interval": 30,
    "backlog": 2048,
}


def _configure_django(database_url: str, conn_max_age: int | None, health_checks: bool) -> None:
    import django
    from django.conf import settings

    from lagscope.refapp.config import build_settings

    servertiming = os.environ.get("LAGSCOPE_DEMO_SERVERTIMING", "0") != "0"
    values = build_settings(database_url, Path(tempfile.gettempdir()), servertiming=servertiming)
    db = values["DATABASES"]["default"]
    db["CONN_MAX_AGE"] = conn_max_age
    db["CONN_HEALTH_CHECKS"] = health_checks
    settings.configure(**values)
    django.setup()


def make_app() -> Any:
    """WSGI factory for gunicorn: the reference app with persistent, health-checked
    connections (what a careful user would configure), database from BENCH_DB_URL."""
    _configure_django(os.environ["BENCH_DB_URL"], None, True)
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _child_prepare(database_url: str) -> None:
    _configure_django(database_url, 0, False)
    from django.db import connections

    from lagscope.refapp.config import ITEM_COUNT
    from lagscope.refapp.seed import ensure_database

    ensure_database(ITEM_COUNT)
    connections.close_all()


def _child_handtuned(database_url: str) -> None:
    """The hand-tuned waitress: its settings, CONN_MAX_AGE=None, no pool, no prewarm."""
    _configure_django(database_url, None, False)
    from django.core.wsgi import get_wsgi_application
    from django.db import connections
    from waitress.server import create_server

    app = get_wsgi_application()
    connections.close_all()
    server = create_server(app, host="127.0.0.1", port=0, **SEED_WAITRESS)
    print(f"hand-tuned: listening on http://127.0.0.1:{server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


def _child_inproc(database_url: str) -> None:
    """Serve timing requests on stdin: a line "N" runs N GETs in process, prints ms each."""
    _configure_django(database_url, None, False)
    from django.test import Client

    client = Client()
    print("inproc: ready", flush=True)
    for line in sys.stdin:
        count = int(line)
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            resp = client.get(PATH)
            body = resp.content
            times.append((time.perf_counter() - t0) * 1000)
            if resp.status_code != 200 or len(body) < 1000:
                raise SystemExit(f"inproc: bad response {resp.status_code}")
        print(" ".join(f"{t:.4f}" for t in times), flush=True)


def _child_proxy(target: str, delay_ms: float) -> None:
    """The tax, from lagscope inject's Python API, in its own process (so its pumping never
    competes with the bench client for the GIL). stdin "count" -> "accepted N"."""
    from lagscope.inject import ConnectionTax, Injector, Route

    host, _, port_text = target.rpartition(":")
    faults = [ConnectionTax(delay_ms=delay_ms)] if delay_ms > 0 else []
    route = Route(listen=("127.0.0.1", 0), upstream=(host, int(port_text)), faults=faults)
    with Injector([route]) as inj:
        print(f"proxy: listening on http://127.0.0.1:{inj.address(0)[1]}", flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(f"accepted {inj.counters().accepted}", flush=True)


def run_child(mode: str, args: list[str]) -> None:
    children: dict[str, Callable[..., None]] = {
        "_proxy": lambda t, d: _child_proxy(t, float(d)),
        "_handtuned": _child_handtuned,
        "_inproc": _child_inproc,
        "_prepare": _child_prepare,
    }
    with contextlib.suppress(KeyboardInterrupt):
        children[mode](*args)

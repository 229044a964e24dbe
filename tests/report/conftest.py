"""Runs to render: a probe and a diagnosis of a taxed stack on loopback, measured once.

The stack is waitress (4 threads) behind a lagscope.inject proxy that holds back the first
bytes of every new connection by 100 ms, and the app sleeps 60 ms on the first request each
worker thread serves (a per-thread database connect in miniature). Server-Timing comes from
lagscope.instrument.wsgi, so each response names its thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lagscope.diagnose import DiagnoseReport
from lagscope.diagnose import run as diagnose
from lagscope.inject import ConnectionTax, Injector, Route
from lagscope.instrument.wsgi import WsgiServerTimingMiddleware
from lagscope.probe.model import ProbeReport
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.runner import run_probe
from support.wsgi import waitress_server

TAX_MS = 100.0
WARMUP_MS = 60.0
THREADS = 4


class WarmingApp:
    """A JSON endpoint whose first request on each worker thread is slow."""

    def __init__(self, hostile_desc: str | None = None) -> None:
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.hostile_desc = hostile_desc

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        name = threading.current_thread().name
        with self.lock:
            first = name not in self.seen
            self.seen.add(name)
        if first:
            time.sleep(WARMUP_MS / 1000)
        body = b'{"items": []}'
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Set-Cookie", "sessionid=s3cr3t; HttpOnly"),
        ]
        if self.hostile_desc is not None:
            headers.append(("Server-Timing", f'evil;dur=0;desc="{self.hostile_desc}"'))
        start_response("200 OK", headers)
        return [body]


@pytest.fixture(scope="package")
def taxed_probe() -> Iterator[ProbeReport]:
    app = WsgiServerTimingMiddleware(WarmingApp(hostile_desc="<script>alert(1)</script>"))
    with waitress_server(app, threads=THREADS) as upstream:
        route = Route(("127.0.0.1", 0), upstream, [ConnectionTax(delay_ms=TAX_MS)])
        with Injector([route]) as inj:
            host, port = inj.address()
            opts = ProbeOptions(
                target=parse_url(f"http://{host}:{port}/api/items/?page=1&q=x"),
                cold=10,
                warm=30,
                headers=(("Authorization", "Bearer top-secret"), ("Cookie", "sid=abc")),
            )
            yield run_probe(opts)


@pytest.fixture(scope="package")
def taxed_diagnosis() -> Iterator[DiagnoseReport]:
    """``lagscope diagnose --quick`` of the same taxed stack, with the app's direct address."""
    app = WsgiServerTimingMiddleware(WarmingApp())
    with waitress_server(app, threads=THREADS) as upstream:
        route = Route(("127.0.0.1", 0), upstream, [ConnectionTax(delay_ms=TAX_MS)])
        with Injector([route]) as inj:
            host, port = inj.address()
            yield diagnose(
                f"http://{host}:{port}/api/items/",
                direct=f"http://{upstream[0]}:{upstream[1]}/api/items/",
                headers=["Authorization: Bearer top-secret"],
                quick=True,
            )

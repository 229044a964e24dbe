"""The async path under a real ASGI server (uvicorn in a thread, loopback, port 0)."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from django.core.asgi import get_asgi_application

from lagscope.instrument.servertiming import Metric, parse


@contextmanager
def uvicorn_server() -> Iterator[tuple[str, int]]:
    # Bound and listening before the server starts: connectable at once, no polling.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        get_asgi_application(), lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def metrics(conn: http.client.HTTPConnection, path: str) -> dict[str, Metric]:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    header = response.getheader("Server-Timing")
    assert header is not None
    return {m.name: m for m in parse(header)}


@pytest.mark.usefixtures("unblocked_db")
def test_async_views_and_connection_identity_under_uvicorn(make_alias: Any, tmp_path: Any) -> None:
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "a.sqlite3")}
    with make_alias("instr", {**sqlite, "CONN_MAX_AGE": 0}), uvicorn_server() as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        other = http.client.HTTPConnection(host, port, timeout=10)
        try:
            first = metrics(conn, "/async/")
            second = metrics(conn, "/async-db/instr/")
            sync_view = metrics(conn, "/tpl/")
            third = metrics(other, "/async/")
        finally:
            conn.close()
            other.close()
    assert [first["conn"].desc, second["conn"].desc, third["conn"].desc] == [
        "new",
        "reused",
        "new",
    ]
    assert second["db"].desc == "3 queries"
    assert second["dbconn"].desc == "1 connect"
    assert {"total", "view", "tpl"} <= set(sync_view)


@pytest.mark.usefixtures("unblocked_db")
def test_async_path_feeds_the_otel_bridge(
    make_alias: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from lagscope.django.middleware import ServerTimingMiddleware
    from lagscope.instrument.otel import CONNECT_SPAN, OtelBridge

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(ServerTimingMiddleware, "otel_bridge", OtelBridge(provider))
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "o.sqlite3")}
    with make_alias("instr", {**sqlite, "CONN_MAX_AGE": 0}), uvicorn_server() as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            header = metrics(conn, "/async-db/instr/")
        finally:
            conn.close()
    provider.shutdown()
    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.name == "GET"]
    assert server.attributes is not None
    assert server.attributes["lagscope.db.query_count"] == 3
    assert server.attributes["lagscope.total_ms"] == pytest.approx(header["total"].dur_ms, abs=1e-3)
    connects = [s for s in spans if s.name == CONNECT_SPAN]
    assert header["dbconn"].desc == "1 connect" and len(connects) == 1
    assert connects[0].start_time is not None and connects[0].end_time is not None
    connect_ms = (connects[0].end_time - connects[0].start_time) / 1e6
    assert connect_ms == pytest.approx(header["dbconn"].dur_ms, abs=0.1)

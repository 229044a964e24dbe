"""The OpenTelemetry bridge under real waitress on real PostgreSQL, with the SDK's in-memory
span and metric exporters: alongside opentelemetry-instrumentation-django and -wsgi (the
figures go on their span) and alone (lagscope's own span)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lagscope.django.middleware import ServerTimingMiddleware
from lagscope.instrument.otel import CONNECT_SPAN, CREATE_TIME, OtelBridge
from lagscope.instrument.servertiming import Metric, parse
from lagscope.instrument.wsgi import WsgiServerTimingMiddleware as WsgiMiddleware
from support.net import get
from support.wsgi import waitress_server

pytestmark = [pytest.mark.usefixtures("unblocked_db"), pytest.mark.postgres]


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> tuple[ReadableSpan, ...]:
        self.tracer_provider.force_flush()
        return tuple(self.spans.get_finished_spans())

    def create_time_points(self) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        points: list[HistogramDataPoint] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == CREATE_TIME:
                        assert metric.unit == "s"
                        points.extend(metric.data.data_points)  # type: ignore[arg-type]
        return points


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    bridge = OtelBridge(tracer_provider, meter_provider)
    # The middleware's documented hook; Django builds the middleware inside the handler.
    monkeypatch.setattr(ServerTimingMiddleware, "otel_bridge", bridge)
    yield Otel(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _metrics(response: http.client.HTTPResponse) -> dict[str, Metric]:
    header = response.getheader("Server-Timing")
    assert header is not None
    return {m.name: m for m in parse(header)}


def _duration_ms(span: ReadableSpan) -> float:
    assert span.start_time is not None and span.end_time is not None
    return (span.end_time - span.start_time) / 1e6


def _requests(django_server: Any, path: str, count: int) -> list[dict[str, Metric]]:
    with django_server(threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            return [_metrics(get(conn, path)) for _ in range(count)]
        finally:
            conn.close()


def _check_connect_figures(
    otel: Otel, seen: list[dict[str, Metric]], parent: list[ReadableSpan]
) -> None:
    connects = [s for s in otel.finished() if s.name == CONNECT_SPAN]
    assert len(connects) == len(seen) == len(parent)
    for header, connect, server in zip(seen, connects, parent, strict=True):
        assert header["dbconn"].desc == "1 connect"
        dbconn_ms = header["dbconn"].dur_ms
        assert dbconn_ms is not None and dbconn_ms > 0.5  # a PostgreSQL backend fork
        assert _duration_ms(connect) == pytest.approx(dbconn_ms, abs=0.1)
        assert connect.kind is SpanKind.CLIENT
        assert connect.parent is not None and connect.parent.span_id == server.context.span_id
        assert connect.attributes is not None
        assert connect.attributes["db.client.connection.pool.name"] == "pgotel"
        assert connect.attributes["db.system.name"] == "postgresql"
        # Inside the request's span.
        assert server.start_time is not None and connect.start_time is not None
        assert server.start_time <= connect.start_time
    (point,) = otel.create_time_points()
    assert point.count == len(seen)
    total_ms = sum(h["dbconn"].dur_ms or 0 for h in seen)
    assert point.sum * 1e3 == pytest.approx(total_ms, abs=0.1 * len(seen))
    assert point.attributes == {
        "db.client.connection.pool.name": "pgotel",
        "db.system.name": "postgresql",
    }


def _check_attributes(span: ReadableSpan, header: dict[str, Metric], reused: bool) -> None:
    attributes = span.attributes
    assert attributes is not None
    assert attributes["lagscope.connection.reused"] is reused
    assert attributes["lagscope.db.query_count"] == 3
    assert attributes["lagscope.db.statement_shapes"] == 1
    assert attributes["lagscope.db.max_repeats"] == 3
    assert attributes["lagscope.db.connect_count"] == 1
    assert attributes["lagscope.db.connect_ms"] == pytest.approx(header["dbconn"].dur_ms, abs=1e-3)
    assert attributes["lagscope.db.query_ms"] == pytest.approx(header["db"].dur_ms, abs=1e-3)
    assert attributes["lagscope.total_ms"] == pytest.approx(header["total"].dur_ms, abs=1e-3)


def test_alongside_the_django_instrumentation_it_enriches_its_span(
    otel: Otel, django_server: Any, make_alias: Any, pg_database: dict[str, Any]
) -> None:
    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    try:
        with make_alias("pgotel", {**pg_database, "CONN_MAX_AGE": 0}):
            seen = _requests(django_server, "/db/pgotel/?n=3", 3)
    finally:
        instrumentor.uninstrument()
    spans = otel.finished()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    # One server span per request, the instrumentation's: lagscope made no second one.
    assert len(servers) == 3
    assert all(
        s.instrumentation_scope
        and s.instrumentation_scope.name.startswith("opentelemetry.instrumentation.django")
        for s in servers
    )
    for span, header, reused in zip(servers, seen, (False, True, True), strict=True):
        _check_attributes(span, header, reused)
    _check_connect_figures(otel, seen, servers)


def test_alone_it_starts_its_own_span(
    otel: Otel, django_server: Any, make_alias: Any, pg_database: dict[str, Any]
) -> None:
    with make_alias("pgotel", {**pg_database, "CONN_MAX_AGE": 0}):
        seen = _requests(django_server, "/db/pgotel/?n=3", 2)
    servers = [s for s in otel.finished() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET", "GET"]
    assert all(
        s.instrumentation_scope and s.instrumentation_scope.name == "lagscope" for s in servers
    )
    for span, header, reused in zip(servers, seen, (False, True), strict=True):
        _check_attributes(span, header, reused)
        assert _duration_ms(span) == pytest.approx(header["total"].dur_ms, abs=0.1)
        assert span.attributes is not None and span.attributes["url.path"] == "/db/pgotel/"
    _check_connect_figures(otel, seen, servers)


@pytest.mark.parametrize("mode", ["enrich", "off"])
def test_enrich_and_off_make_no_span_of_their_own(
    mode: str,
    otel: Otel,
    django_server: Any,
    make_alias: Any,
    pg_database: dict[str, Any],
    settings: Any,
) -> None:
    settings.LAGSCOPE = {"OTEL": mode}
    with make_alias("pgotel", {**pg_database, "CONN_MAX_AGE": 0}):
        seen = _requests(django_server, "/db/pgotel/?n=1", 1)
    assert seen[0]["dbconn"].desc == "1 connect"  # the header is unchanged
    assert otel.finished() == ()
    # The metric needs no span: "enrich" still records the connect, "off" records nothing.
    assert len(otel.create_time_points()) == (1 if mode == "enrich" else 0)


def test_untrusted_clients_get_no_header_but_the_span_gets_the_figures(
    otel: Otel, django_server: Any, make_alias: Any, pg_database: dict[str, Any], settings: Any
) -> None:
    settings.LAGSCOPE = {"TRUST_LOOPBACK": False}
    with (
        make_alias("pgotel", {**pg_database, "CONN_MAX_AGE": 0}),
        django_server(threads=1) as (host, port),
    ):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            response = get(conn, "/db/pgotel/?n=3")
        finally:
            conn.close()
    assert response.getheader("Server-Timing") is None
    (server,) = [s for s in otel.finished() if s.kind is SpanKind.SERVER]
    assert server.attributes is not None and server.attributes["lagscope.db.query_count"] == 3


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_wsgi_middleware_enriches_the_wsgi_instrumentation_span(otel: Otel) -> None:
    inner = WsgiMiddleware(
        _wsgi_app, otel_bridge=OtelBridge(otel.tracer_provider, otel.meter_provider)
    )
    app = OpenTelemetryMiddleware(
        inner, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    with waitress_server(app, threads=1) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            headers = [_metrics(get(conn, "/x")) for _ in range(2)]
        finally:
            conn.close()
    servers = [s for s in otel.finished() if s.kind is SpanKind.SERVER]
    assert len(servers) == 2
    for span, header, reused in zip(servers, headers, (False, True), strict=True):
        assert span.attributes is not None
        assert span.attributes["lagscope.connection.reused"] is reused
        assert span.attributes["lagscope.total_ms"] == pytest.approx(
            header["total"].dur_ms, abs=1e-3
        )
        assert span.attributes["lagscope.db.query_count"] == 0


def test_without_an_sdk_nothing_is_timed_for_opentelemetry() -> None:
    bridge = OtelBridge()  # the global providers: none configured in this suite
    assert not bridge.active()

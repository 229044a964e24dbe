"""The OpenTelemetry bridge: lagscope's per-request figures, added to the request's span.

Optional (``pip install 'lagscope[otel]'``, which is ``opentelemetry-api``). When the
request's current span is recording, as under ``opentelemetry-instrumentation-django`` or
``-wsgi``, the middlewares call :meth:`OtelBridge.record` as the response leaves, and it:

* sets ``lagscope.*`` attributes on that span (connection reused, queue time, query
  count, distinct statement shapes, ...; the table is in docs/django.md);
* adds one child span ``lagscope.db.connect`` per new database connection, with the
  connect's own start and end;
* records each connect's duration in the semantic-convention histogram
  ``db.client.connection.create_time`` (seconds, attribute
  ``db.client.connection.pool.name`` = the alias).

It enriches the instrumentation's span rather than making a second one. With ``mode``
"auto" and no recording span (no instrumentation), it starts its own server span,
back-dated to the request's start, so the figures still reach the backend.

The figures come from the same :class:`~lagscope.instrument.record.RequestTiming` as the
Server-Timing header, so the two always agree. Timestamps on the middleware's clock are
put on the epoch clock through one reading of both clocks, which keeps durations exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from lagscope.instrument.record import RequestTiming

__all__ = ["CONNECT_SPAN", "CREATE_TIME", "OtelBridge", "OtelMode", "default_bridge"]

OtelMode = Literal["auto", "enrich", "off"]

CONNECT_SPAN = "lagscope.db.connect"
CREATE_TIME = "db.client.connection.create_time"
# Connect durations: loopback trust ~5 ms, scram ~12 ms, GSS ~100 ms, Windows up to 4 s.
_CREATE_TIME_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


_RECHECK_S = 1.0
# The API's stand-ins until an SDK sets the global providers.
_NO_SDK = frozenset(
    {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"}
)


class OtelBridge:
    """Adds a request's figures to OpenTelemetry; the providers default to the global ones."""

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        from opentelemetry.metrics import get_meter, get_meter_provider
        from opentelemetry.trace import (
            SpanKind,
            get_current_span,
            get_tracer,
            get_tracer_provider,
            set_span_in_context,
        )

        from lagscope import __version__

        self._current_span = get_current_span
        self._in_context = set_span_in_context
        self._providers = (get_tracer_provider, get_meter_provider)
        self._server = SpanKind.SERVER
        self._client = SpanKind.CLIENT
        self.tracer = get_tracer("lagscope", __version__, tracer_provider)
        meter = get_meter("lagscope", __version__, meter_provider=meter_provider)
        self.create_time = meter.create_histogram(
            CREATE_TIME,
            unit="s",
            description="Time it took to create a new database connection.",
            explicit_bucket_boundaries_advisory=list(_CREATE_TIME_BUCKETS_S),
        )
        self.wall_clock_ns = wall_clock_ns
        self.monotonic = time.monotonic
        # An SDK, once set globally, stays (OpenTelemetry allows setting it once), so a
        # True answer is kept; a False one is looked at again after _RECHECK_S.
        self._active = tracer_provider is not None or meter_provider is not None
        self._checked_s = -_RECHECK_S

    def active(self) -> bool:
        """Whether anything would be recorded: an SDK (or explicit provider) is in place.

        Without one the API hands out no-op spans and instruments, and the middlewares
        skip timing the requests that only OpenTelemetry would have seen. Asking the API
        costs ~3.5 µs, so it is asked at most once a second.
        """
        if self._active:
            return True
        now_s = self.monotonic()
        if now_s - self._checked_s < _RECHECK_S:
            return False
        self._checked_s = now_s
        tracer_provider = type(self._providers[0]()).__name__
        meter_provider = type(self._providers[1]()).__name__
        self._active = tracer_provider not in _NO_SDK or meter_provider not in _NO_SDK
        return self._active

    def __repr__(self) -> str:
        return f"<OtelBridge tracer={self.tracer!r}>"

    def record(
        self,
        timing: RequestTiming,
        now_s: float,
        mode: OtelMode,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Add ``timing`` (ended) to the current span; ``now_s`` is a reading of its clock."""
        connects = timing.connects
        if connects:
            for _end_s, duration_s, alias, vendor in connects:
                self.create_time.record(
                    duration_s,
                    {"db.client.connection.pool.name": alias, "db.system.name": vendor},
                )
        span = self._current_span()
        own = None
        offset_ns = 0
        if not span.is_recording():
            if mode != "auto":
                return
            offset_ns = self.wall_clock_ns() - round(now_s * 1e9)
            own = self.tracer.start_span(
                method or "HTTP",
                kind=self._server,
                start_time=offset_ns + round(timing.start_s * 1e9),
                attributes={"http.request.method": method or "", "url.path": path or ""},
            )
            if not own.is_recording():
                return  # no SDK configured: the API's no-op tracer
            span = own
        span.set_attributes(_attributes(timing))
        if connects:
            if not offset_ns:
                offset_ns = self.wall_clock_ns() - round(now_s * 1e9)
            parent = self._in_context(span)
            for end_s, duration_s, alias, vendor in connects:
                end_ns = offset_ns + round(end_s * 1e9)
                child = self.tracer.start_span(
                    CONNECT_SPAN,
                    context=parent,
                    kind=self._client,
                    start_time=end_ns - round(duration_s * 1e9),
                    attributes={
                        "db.system.name": vendor,
                        "db.client.connection.pool.name": alias,
                    },
                )
                child.end(end_time=end_ns)
        if own is not None:
            end_s = timing.end_s if timing.end_s is not None else now_s
            own.end(end_time=offset_ns + round(end_s * 1e9))


def _attributes(timing: RequestTiming) -> dict[str, Any]:
    # Only what is known and non-zero besides the query count: the SDK validates and
    # locks per attribute, ~1.3 µs each, which is most of the bridge's cost.
    out: dict[str, Any] = {}
    total_s = timing.total_s()
    if total_s is not None:
        out["lagscope.total_ms"] = total_s * 1e3
    if timing.first_on_connection is not None:
        out["lagscope.connection.reused"] = not timing.first_on_connection
    if timing.queue_ms is not None:
        out["lagscope.queue_ms"] = timing.queue_ms
    out["lagscope.db.query_count"] = timing.db_count
    if timing.db_count:
        out["lagscope.db.query_ms"] = timing.db_s * 1e3
    top = timing.top_shape()
    if top is not None:
        out["lagscope.db.statement_shapes"] = top[0]
        out["lagscope.db.max_repeats"] = top[1]
    if timing.dbconn_count:
        out["lagscope.db.connect_count"] = timing.dbconn_count
        out["lagscope.db.connect_ms"] = timing.dbconn_s * 1e3
    if timing.dbpool_count:
        out["lagscope.db.pool_checkouts"] = timing.dbpool_count
        out["lagscope.db.pool_wait_ms"] = timing.dbpool_s * 1e3
    return out


_default: OtelBridge | None = None
_default_tried = False


def default_bridge() -> OtelBridge | None:
    """A bridge on the global providers, or None when ``opentelemetry-api`` is missing."""
    global _default, _default_tried
    if not _default_tried:
        _default_tried = True
        try:
            _default = OtelBridge()
        except ImportError:
            _default = None
    return _default

"""``WsgiServerTimingMiddleware``: Server-Timing for any WSGI app (Flask, Pyramid, bare WSGI).

It reports ``total`` (entry to ``start_response``), ``conn`` (first request on the client
connection or not), ``queue`` (from ``X-Request-Start``) and ``thread``, with the same
trust rule and option names as the Django app (lower case here, as keyword arguments).
Databases are not observed: that needs a framework hook. Instrumentation failures are
logged and the app's response passes through unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from types import TracebackType
from typing import Any, Protocol

from lagscope.instrument.connections import ConnectionTracker
from lagscope.instrument.disclosure import Disclosure
from lagscope.instrument.options import options_from_mapping
from lagscope.instrument.otel import OtelBridge, default_bridge
from lagscope.instrument.profile import PROFILE_HEADER, Reason
from lagscope.instrument.record import RequestTiming, build_header
from lagscope.instrument.request_entry import FailureLog, begin_request
from lagscope.instrument.sampling import PROFILE_KEY, Sampler, finish_profile, start_profile

__all__ = ["WsgiServerTimingMiddleware"]

# Read on every trusted request (the profile check): a module constant is a plain global
# lookup, where an enum member is an attribute lookup through its class.
_FULL = Disclosure.FULL

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
_Headers = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: _Headers, exc_info: _ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WsgiServerTimingMiddleware:
    """Wrap ``app``; options are the rows of docs/server-timing.md's table, in lower case.

    ``internal_ips`` plays the part of Django's INTERNAL_IPS. ``clock`` (monotonic
    seconds) and ``wall_clock`` (epoch seconds, for X-Request-Start) are the clocks used.
    ``otel_bridge`` (default: :func:`lagscope.instrument.otel.default_bridge`) adds the figures to
    OpenTelemetry, as the ``otel`` option says.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        internal_ips: Collection[str] = (),
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        otel_bridge: OtelBridge | None = None,
        **options: object,
    ) -> None:
        self.app = app
        # Validated now: a bad option is a programming error, raised at startup.
        self.options = options_from_mapping(options)
        self.internal_ips = frozenset(internal_ips)
        self.clock = clock
        self.wall_clock = wall_clock
        self.tracker = ConnectionTracker(
            self.options.connection_table_size, self.options.connection_idle_s
        )
        self.failures = FailureLog()
        bridge = otel_bridge if otel_bridge is not None else default_bridge()
        self._otel = bridge if self.options.otel != "off" else None

    def __repr__(self) -> str:
        return f"<WsgiServerTimingMiddleware app={self.app!r} {self.tracker!r}>"

    def _begin(self, environ: dict[str, Any]) -> tuple[RequestTiming, Disclosure, bool] | None:
        options = self.options
        if not options.enabled:
            return None
        otel = self._otel is not None and self._otel.active()
        started = begin_request(
            environ,
            options,
            self.tracker,
            start_s=self.clock(),
            thread=threading.current_thread().name,
            wall_clock=self.wall_clock,
            debug=False,
            internal_ips=self.internal_ips if options.trust_internal_ips else None,
            always=otel,
        )
        return None if started is None else (*started, otel)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            started = self._begin(environ)
        except Exception:
            self.failures("request entry")
            started = None
        if started is None:
            return self.app(environ, start_response)
        timing, level, otel = started
        if level is _FULL and PROFILE_KEY in environ:
            return self._call_profiled(environ, start_response, timing, level, otel)
        return self.app(environ, self._timed(environ, start_response, timing, level, otel))

    def _timed(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        timing: RequestTiming,
        level: Disclosure,
        otel: bool,
        profile: Callable[[], str | None] | None = None,
    ) -> StartResponse:
        """``start_response`` adding the header (and the profile header, from ``profile``)."""

        def timed_start_response(
            status: str, headers: _Headers, exc_info: _ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            out_headers = headers
            try:
                timing.end_s = self.clock()
                header = build_header(timing, level)
                if header is not None:
                    out_headers = [*headers, ("Server-Timing", header)]
            except Exception:
                self.failures("adding the header")
            if profile is not None:
                value = profile()
                if value is not None:
                    out_headers = [*out_headers, (PROFILE_HEADER, value)]
            if otel and self._otel is not None:
                try:
                    method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
                    now_s = timing.end_s if timing.end_s is not None else self.clock()
                    self._otel.record(timing, now_s, self.options.otel, method, path)
                except Exception:
                    self.failures("OpenTelemetry")
            if exc_info is None:
                return start_response(status, out_headers)
            return start_response(status, out_headers, exc_info)

        return timed_start_response

    def _call_profiled(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        timing: RequestTiming,
        level: Disclosure,
        otel: bool,
    ) -> Iterable[bytes]:
        """The app's call, sampled until ``start_response`` (or the call's return, for an
        app that starts its response while the body is iterated)."""
        state: Sampler | Reason | None
        try:
            state = start_profile(environ, self.options.profile)
        except Exception:
            self.failures("profiling")
            state = "failed"
        done: list[str | None] = []

        def profile() -> str | None:
            if not done:
                done.append(None if state is None else finish_profile(state, self.failures))
            return done[0]

        try:
            return self.app(
                environ, self._timed(environ, start_response, timing, level, otel, profile)
            )
        finally:
            profile()

"""``ServerTimingMiddleware``: times each request and adds the ``Server-Timing`` header.

Sync- and async-capable; Django picks the mode. The middleware only gathers timestamps
into a :class:`~lagscope.instrument.record.RequestTiming`; metric building and the trust
rule are the pure core's. Any exception inside the instrumentation is logged (once with a
traceback, then at DEBUG) and the response goes out exactly as the view made it: the view's
own exceptions are never caught or touched here.
"""

from __future__ import annotations

import contextvars
import threading
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.template.response import SimpleTemplateResponse

from lagscope.django import db
from lagscope.django.conf import get_options
from lagscope.instrument.connections import ConnectionTracker
from lagscope.instrument.disclosure import Disclosure
from lagscope.instrument.options import InstrumentOptions
from lagscope.instrument.otel import OtelBridge, OtelMode, default_bridge
from lagscope.instrument.profile import PROFILE_HEADER, REQUEST_VALUE, Reason, reason_header
from lagscope.instrument.record import RequestTiming, build_header
from lagscope.instrument.request_entry import FailureLog, begin_request
from lagscope.instrument.sampling import PROFILE_KEY, Sampler, finish_profile, start_profile

__all__ = ["ServerTimingMiddleware"]

# Read on every trusted request (the profile check): a module constant is a plain global
# lookup, where an enum member is an attribute lookup through its class.
_FULL = Disclosure.FULL

_Token = contextvars.Token[RequestTiming | None]
# (record, context token, disclosure, OpenTelemetry mode or None)
_Started = tuple[RequestTiming, _Token, Disclosure, "OtelMode | None"]
_P = ParamSpec("_P")
_R = TypeVar("_R")


class ServerTimingMiddleware:
    """Adds ``Server-Timing`` (metrics in docs/server-timing.md). Put it first in MIDDLEWARE."""

    sync_capable = True
    async_capable = True

    # The clocks, as ordinary attributes: a monotonic one for durations (shared with the
    # database hooks) and the wall clock for X-Request-Start.
    clock: Callable[[], float] = staticmethod(db.clock)
    wall_clock: Callable[[], float] = staticmethod(time.time)
    # The OpenTelemetry bridge; None: lagscope.instrument.otel.default_bridge() (the global
    # providers, or nothing when opentelemetry-api is not installed).
    otel_bridge: OtelBridge | None = None

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django calls these in the handler's mode; coroutine versions avoid a thread hop.
            self.process_view = _as_coroutine(self, self.process_view)  # type: ignore[method-assign,assignment]
            self.process_template_response = _as_coroutine(  # type: ignore[method-assign,assignment]
                self, self.process_template_response
            )
        self._tracker = ConnectionTracker()
        self._tracker_lock = threading.Lock()
        self.failures = FailureLog()
        self._otel = self.otel_bridge if self.otel_bridge is not None else default_bridge()

    def __repr__(self) -> str:
        mode = "async" if self.is_async else "sync"
        return f"<ServerTimingMiddleware {mode} {self._tracker!r} failures={self.failures.count}>"

    # -- request entry and exit ------------------------------------------------------

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = self._begin(request)
        if started is not None and started[2] is _FULL and PROFILE_KEY in request.META:
            return self._call_profiled(request, started)
        try:
            response = self.get_response(request)
        finally:
            self._leave(started)
        return self._finish(request, response, started)

    async def __acall__(self, request: HttpRequest) -> Any:
        started = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            self._leave(started)
        response = self._finish(request, response, started)
        if (
            started is not None
            and started[2] is _FULL
            and request.META.get(PROFILE_KEY) == REQUEST_VALUE
        ):
            # The view runs on threads the sampler does not follow (sync_to_async).
            self._add_profile(response, reason_header("async"))
        return response

    # -- profile mode (a trusted client that asks; docs/server-timing.md) ---------------

    def _call_profiled(self, request: HttpRequest, started: _Started) -> Any:
        state: Sampler | Reason | None
        try:
            allowed = get_options().profile or bool(settings.DEBUG)
            state = start_profile(request.META, allowed)
        except Exception:
            self.failures("profiling")
            state = "failed"
        value: str | None = None
        try:
            response = self.get_response(request)
        finally:
            self._leave(started)
            if state is not None:
                value = finish_profile(state, self.failures)
        response = self._finish(request, response, started)
        if value is not None:
            self._add_profile(response, value)
        return response

    def _add_profile(self, response: HttpResponseBase, value: str) -> None:
        try:
            response[PROFILE_HEADER] = value
        except Exception:
            self.failures("adding the profile")

    def _tracker_for(self, options: InstrumentOptions) -> ConnectionTracker:
        tracker = self._tracker
        if (
            tracker.max_entries != options.connection_table_size
            or tracker.idle_s != options.connection_idle_s
        ):
            with self._tracker_lock:
                tracker = self._tracker = ConnectionTracker(
                    options.connection_table_size, options.connection_idle_s
                )
        return tracker

    def _begin(self, request: HttpRequest) -> _Started | None:
        try:
            options = get_options()
            if not options.enabled:
                return None
            otel = self._otel
            if otel is not None and (options.otel == "off" or not otel.active()):
                otel = None
            started = begin_request(
                request.META,
                options,
                self._tracker_for(options),
                start_s=self.clock(),
                thread=threading.current_thread().name,
                wall_clock=self.wall_clock,
                debug=options.trust_debug and bool(settings.DEBUG),
                internal_ips=settings.INTERNAL_IPS if options.trust_internal_ips else None,
                always=otel is not None,
            )
            if started is None:
                return None
            timing, level = started
            token = db.current.set(timing)
        except Exception:
            self.failures("request entry")
            return None
        return timing, token, level, options.otel if otel is not None else None

    @staticmethod
    def _leave(started: _Started | None) -> None:
        # The view's code is done: later code on this thread or task sees no request.
        if started is not None:
            db.current.reset(started[1])

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, started: _Started | None
    ) -> HttpResponseBase:
        """The response, with the header added when the request was timed."""
        if started is None:
            return response
        timing, _token, level, otel_mode = started
        try:
            timing.end_s = self.clock()
            header = build_header(timing, level)
            if header is not None:
                existing = response.get("Server-Timing")
                response["Server-Timing"] = f"{existing}, {header}" if existing else header
        except Exception:
            self.failures("adding the header")
        if otel_mode is not None and self._otel is not None:
            try:
                now_s = timing.end_s if timing.end_s is not None else self.clock()
                self._otel.record(timing, now_s, otel_mode, request.method, request.path)
            except Exception:
                self.failures("OpenTelemetry")
        return response

    # -- view and template hooks -----------------------------------------------------

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        timing = db.current.get()
        if timing is not None:
            try:
                timing.view_start_s = timing.last_mark_s = self.clock()
            except Exception:
                self.failures("view timing")

    def process_template_response(
        self, request: HttpRequest, response: SimpleTemplateResponse
    ) -> SimpleTemplateResponse:
        # Ours runs last of the template-response hooks, right before Django renders.
        timing = db.current.get()
        if timing is not None:
            try:
                now_s = self.clock()
                timing.view_end_s = timing.tpl_start_s = timing.last_mark_s = now_s
                response.add_post_render_callback(self._rendered_callback(timing))
            except Exception:
                self.failures("template timing")
        return response

    def _rendered_callback(self, timing: RequestTiming) -> Callable[[HttpResponseBase], None]:
        def rendered(response: HttpResponseBase) -> None:
            # Must return None: a post-render callback's return value replaces the response.
            try:
                timing.tpl_end_s = timing.last_mark_s = self.clock()
            except Exception:
                self.failures("template timing")

        return rendered


def _as_coroutine(owner: object, hook: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """``hook`` (a method of ``owner``) as a coroutine method that does the same quick,
    non-blocking work. Bound to ``owner``: Django names a hook's class by ``__self__``."""

    async def run(_owner: object, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return hook(*args, **kwargs)

    return types.MethodType(run, owner)

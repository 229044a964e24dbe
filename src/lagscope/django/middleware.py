"""``ServerTimingMiddleware``: times each request and adds the ``Server-Timing`` header.

Sync- and async-capable; Django picks the mode. The middleware only gathers timestamps
into a :class:`~lagscope.instrument.record.RequestTiming`; metric building and the trust
rule are the pure core's. Any exception inside the instrumentation is logged (once with a
traceback, then at DEBUG) and the response goes out exactly as the view made it: the view's
own exceptions are never caught or touched here.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.template.response import SimpleTemplateResponse

from lagscope.django import db
from lagscope.django.conf import get_options
from lagscope.instrument.connections import ConnectionTracker
from lagscope.instrument.disclosure import Disclosure, decide
from lagscope.instrument.options import InstrumentOptions
from lagscope.instrument.record import RequestTiming, build_header
from lagscope.instrument.request_start import queue_ms

__all__ = ["ServerTimingMiddleware"]

logger = logging.getLogger("lagscope")

_Token = contextvars.Token[RequestTiming | None]


@functools.lru_cache(maxsize=32)
def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


# Enum lookup by value costs ~0.5 µs; this is the per-request path.
_UNTRUSTED = {d.value: d for d in (Disclosure.NONE, Disclosure.TOTAL)}


class _FailureLog:
    """Log the first instrumentation failure loudly and the rest quietly."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, what: str) -> None:
        self.count += 1
        if self.count == 1:
            logger.warning("lagscope: %s failed; the response is unchanged", what, exc_info=True)
        else:
            logger.debug("lagscope: %s failed (%d times)", what, self.count, exc_info=True)


class ServerTimingMiddleware:
    """Adds ``Server-Timing`` (metrics in docs/server-timing.md). Put it first in MIDDLEWARE."""

    sync_capable = True
    async_capable = True

    # The clocks, as ordinary attributes: a monotonic one for durations (shared with the
    # database hooks) and the wall clock for X-Request-Start.
    clock: Callable[[], float] = staticmethod(db.clock)
    wall_clock: Callable[[], float] = staticmethod(time.time)

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
            # Django calls these in the handler's mode; async versions avoid a thread hop.
            self.process_view = self._process_view_async  # type: ignore[method-assign,assignment]
            tpl_hook = self._process_template_response_async
            self.process_template_response = tpl_hook  # type: ignore[method-assign,assignment]
        self._tracker = ConnectionTracker()
        self._tracker_lock = threading.Lock()
        self.failures = _FailureLog()

    def __repr__(self) -> str:
        mode = "async" if self.is_async else "sync"
        return f"<ServerTimingMiddleware {mode} {self._tracker!r} failures={self.failures.count}>"

    # -- request entry and exit ------------------------------------------------------

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        started = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            if started is not None:
                db.current.reset(started[1])
        if started is not None:
            self._finish(response, started[0], started[2])
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        started = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            if started is not None:
                db.current.reset(started[1])
        if started is not None:
            self._finish(response, started[0], started[2])
        return response

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

    def _begin(self, request: HttpRequest) -> tuple[RequestTiming, _Token, Disclosure] | None:
        try:
            options = get_options()
            if not options.enabled:
                return None
            start_s = self.clock()
            meta = request.META
            # Every request goes through the tracker, trusted or not, or a trusted request
            # later on the same connection would look new.
            disconnected = meta.get("waitress.client_disconnected")
            first = self._tracker_for(options).first_request(
                meta.get("REMOTE_ADDR"),
                meta.get("REMOTE_PORT"),
                getattr(disconnected, "__self__", None),
                start_s,
            )
            level = decide(
                debug=options.trust_debug and bool(settings.DEBUG),
                peer=meta.get("REMOTE_ADDR"),
                forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
                real_ip=meta.get("HTTP_X_REAL_IP"),
                internal_ips=settings.INTERNAL_IPS if options.trust_internal_ips else None,
                trust_loopback=options.trust_loopback,
                secret=options.secret,
                presented_secret=(
                    meta.get(_meta_key(options.secret_header)) if options.secret else None
                ),
                untrusted=_UNTRUSTED[options.untrusted],
            )
            if level is Disclosure.NONE:
                return None
            timing = RequestTiming(start_s)
            timing.first_on_connection = first
            timing.thread = threading.current_thread().name
            if options.queue_header:
                raw = meta.get(_meta_key(options.queue_header))
                if raw:
                    timing.queue_ms = queue_ms(str(raw), self.wall_clock(), options.max_queue_s)
            token = db.current.set(timing)
        except Exception:
            self.failures("request entry")
            return None
        return timing, token, level

    def _finish(self, response: HttpResponseBase, timing: RequestTiming, level: Disclosure) -> None:
        try:
            timing.end_s = self.clock()
            header = build_header(timing, level)
            if header is None:
                return
            existing = response.get("Server-Timing")
            response["Server-Timing"] = f"{existing}, {header}" if existing else header
        except Exception:
            self.failures("adding the header")

    # -- view and template hooks -----------------------------------------------------

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        self._view_started()

    def _view_started(self) -> None:
        timing = db.current.get()
        if timing is not None:
            try:
                timing.view_start_s = timing.last_mark_s = self.clock()
            except Exception:
                self.failures("view timing")

    async def _process_view_async(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # Not self.process_view: in async mode that attribute is this coroutine function.
        self._view_started()

    def process_template_response(
        self, request: HttpRequest, response: SimpleTemplateResponse
    ) -> SimpleTemplateResponse:
        # Ours runs last of the template-response hooks, right before Django renders.
        return self._template_started(response)

    def _template_started(self, response: SimpleTemplateResponse) -> SimpleTemplateResponse:
        timing = db.current.get()
        if timing is not None:
            try:
                now_s = self.clock()
                timing.view_end_s = timing.tpl_start_s = timing.last_mark_s = now_s
                response.add_post_render_callback(self._rendered_callback(timing))
            except Exception:
                self.failures("template timing")
        return response

    async def _process_template_response_async(
        self, request: HttpRequest, response: SimpleTemplateResponse
    ) -> SimpleTemplateResponse:
        return self._template_started(response)

    def _rendered_callback(self, timing: RequestTiming) -> Callable[[HttpResponseBase], None]:
        def rendered(response: HttpResponseBase) -> None:
            # Must return None: a post-render callback's return value replaces the response.
            try:
                timing.tpl_end_s = timing.last_mark_s = self.clock()
            except Exception:
                self.failures("template timing")

        return rendered

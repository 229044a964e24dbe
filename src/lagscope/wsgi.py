"""``lagscope.wsgi.ServerTimingMiddleware``: Server-Timing for any WSGI app (Flask, Pyramid,
bare WSGI).

It reports ``total`` (entry to ``start_response``), ``conn`` (first request on the client
connection or not), ``queue`` (from ``X-Request-Start``) and ``thread``, with the same
trust rule and option names as the Django app (lower case here, as keyword arguments).
Databases are not observed: that needs a framework hook. Instrumentation failures are
logged and the app's response passes through unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from types import TracebackType
from typing import Any, Protocol

from lagscope.instrument.connections import ConnectionTracker
from lagscope.instrument.disclosure import Disclosure, decide
from lagscope.instrument.options import options_from_mapping
from lagscope.instrument.record import RequestTiming, build_header
from lagscope.instrument.request_start import queue_ms

__all__ = ["ServerTimingMiddleware"]

logger = logging.getLogger("lagscope")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
_Headers = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: _Headers, exc_info: _ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class ServerTimingMiddleware:
    """Wrap ``app``; options are the rows of docs/server-timing.md's table, in lower case.

    ``internal_ips`` plays the part of Django's INTERNAL_IPS. ``clock`` (monotonic
    seconds) and ``wall_clock`` (epoch seconds, for X-Request-Start) are the clocks used.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        internal_ips: Collection[str] = (),
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
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
        self._untrusted = Disclosure(self.options.untrusted)
        self._secret_key = _environ_key(self.options.secret_header)
        self._queue_key = (
            _environ_key(self.options.queue_header) if self.options.queue_header else ""
        )
        self.failures = 0

    def __repr__(self) -> str:
        return f"<lagscope.wsgi.ServerTimingMiddleware app={self.app!r} {self.tracker!r}>"

    def _failed(self, what: str) -> None:
        self.failures += 1
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        logger.log(level, "lagscope: %s failed; the response is unchanged", what, exc_info=True)

    def _begin(self, environ: dict[str, Any]) -> tuple[RequestTiming, Disclosure] | None:
        options = self.options
        if not options.enabled:
            return None
        start_s = self.clock()
        disconnected = environ.get("waitress.client_disconnected")
        first = self.tracker.first_request(
            environ.get("REMOTE_ADDR"),
            environ.get("REMOTE_PORT"),
            getattr(disconnected, "__self__", None),
            start_s,
        )
        level = decide(
            debug=False,
            peer=environ.get("REMOTE_ADDR"),
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
            real_ip=environ.get("HTTP_X_REAL_IP"),
            internal_ips=self.internal_ips if options.trust_internal_ips else None,
            trust_loopback=options.trust_loopback,
            secret=options.secret,
            presented_secret=environ.get(self._secret_key) if options.secret else None,
            untrusted=self._untrusted,
        )
        if level is Disclosure.NONE:
            return None
        timing = RequestTiming(start_s)
        timing.first_on_connection = first
        timing.thread = threading.current_thread().name
        if self._queue_key:
            raw = environ.get(self._queue_key)
            if raw:
                timing.queue_ms = queue_ms(str(raw), self.wall_clock(), options.max_queue_s)
        return timing, level

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            started = self._begin(environ)
        except Exception:
            self._failed("request entry")
            started = None
        if started is None:
            return self.app(environ, start_response)
        timing, level = started

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
                self._failed("adding the header")
            if exc_info is None:
                return start_response(status, out_headers)
            return start_response(status, out_headers, exc_info)

        return self.app(environ, timed_start_response)

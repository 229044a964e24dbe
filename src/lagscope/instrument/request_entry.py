"""Request entry, shared by the Django and WSGI middlewares. Pure: the environ, the options,
the clocks' readings and the thread name are passed in.

Django's ``request.META`` is the WSGI environ (or ASGI's equivalent built the same way),
so one function decides, from the same keys, whether a request is instrumented, at which
disclosure level, and fills the start of its :class:`~.record.RequestTiming`. Also here:
the environ key of a configured header, and the log that reports instrumentation failures
without ever touching the response.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from lagscope.instrument.connections import CLIENT_CONNECTION_NEW, ConnectionTracker
from lagscope.instrument.disclosure import Disclosure, decide
from lagscope.instrument.options import InstrumentOptions
from lagscope.instrument.record import RequestTiming
from lagscope.instrument.request_start import queue_ms

__all__ = ["FailureLog", "begin_request", "environ_key"]

logger = logging.getLogger("lagscope")

# Enum lookup by value costs ~0.5 µs; this is the per-request path.
_UNTRUSTED = {d.value: d for d in (Disclosure.NONE, Disclosure.TOTAL)}


@functools.lru_cache(maxsize=32)
def environ_key(header: str) -> str:
    """The WSGI environ (and Django ``META``) key of request header ``header``."""
    return "HTTP_" + header.upper().replace("-", "_")


class FailureLog:
    """Log the first instrumentation failure loudly (with its traceback), the rest quietly."""

    def __init__(self) -> None:
        self.count = 0

    def __repr__(self) -> str:
        return f"<FailureLog count={self.count}>"

    def __call__(self, what: str) -> None:
        self.count += 1
        if self.count == 1:
            logger.warning("lagscope: %s failed; the response is unchanged", what, exc_info=True)
        else:
            logger.debug("lagscope: %s failed (%d times)", what, self.count, exc_info=True)


def begin_request(
    environ: Mapping[str, Any],
    options: InstrumentOptions,
    tracker: ConnectionTracker,
    *,
    start_s: float,
    thread: str,
    wall_clock: Callable[[], float],
    debug: bool,
    internal_ips: Collection[str] | None,
    always: bool = False,
) -> tuple[RequestTiming, Disclosure] | None:
    """The request's timing record and disclosure level, or None when nothing may be shown.

    ``debug`` is "DEBUG is on and trusted"; ``internal_ips`` is None when those addresses
    are not trusted. ``wall_clock`` is read only when the request carries a queue header.
    ``always``: time the request even when the client may see nothing (level
    ``Disclosure.NONE``), because the figures also go to OpenTelemetry, the operator's.
    """
    # Every request goes through the tracker, trusted or not, or a trusted request later
    # on the same connection would look new.
    peer = environ.get("REMOTE_ADDR")
    told = environ.get(CLIENT_CONNECTION_NEW)
    if isinstance(told, bool):
        first: bool | None = told  # the server in front of this one owns the connection
    else:
        disconnected = environ.get("waitress.client_disconnected")
        first = tracker.first_request(
            peer, environ.get("REMOTE_PORT"), getattr(disconnected, "__self__", None), start_s
        )
    presented = environ.get(environ_key(options.secret_header)) if options.secret else None
    level = decide(
        debug=debug,
        peer=peer,
        forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
        real_ip=environ.get("HTTP_X_REAL_IP"),
        internal_ips=internal_ips,
        trust_loopback=options.trust_loopback,
        secret=options.secret,
        presented_secret=presented,
        untrusted=_UNTRUSTED[options.untrusted],
    )
    if level is Disclosure.NONE and not always:
        return None
    timing = RequestTiming(start_s)
    timing.first_on_connection = first
    timing.thread = thread
    if options.queue_header:
        raw = environ.get(environ_key(options.queue_header))
        if raw:
            timing.queue_ms = queue_ms(str(raw), wall_clock(), options.max_queue_s)
    return timing, level

"""Instrumentation: what runs inside the measured app, and the Server-Timing grammar.

The core is pure: no sockets, no settings, no clock of its own (every timestamp is passed in).

* :mod:`.record`: the per-request timing record and the Server-Timing metrics built from it;
* :mod:`.request_entry`: request entry, shared by the Django and WSGI middlewares;
* :mod:`.shapes`: statement shapes (a hash of normalized SQL) for the repeat counts;
* :mod:`.request_start`: queue time from ``X-Request-Start``;
* :mod:`.connections`: first request on a client connection, with bounded memory;
* :mod:`.disclosure`: who may see which metrics;
* :mod:`.options`: the one typed table of settings;
* :mod:`.servertiming`: the Server-Timing grammar (parse and format), which probe and diagnose
  read with;
* :mod:`.wsgi`: ``WsgiServerTimingMiddleware`` for any WSGI app (the Django one is
  :mod:`lagscope.django.middleware`);
* :mod:`.otel`: lagscope's figures on OpenTelemetry spans and metrics.

The names below load on first use (PEP 562), so ``lagscope probe``, which needs only
:mod:`.servertiming`, does not import the middleware core with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lagscope.lazy import lazy_exports

if TYPE_CHECKING:
    from lagscope.instrument.connections import ConnectionTracker
    from lagscope.instrument.disclosure import Disclosure, decide, is_loopback
    from lagscope.instrument.options import (
        InstrumentOptions,
        OptionsError,
        options_from_mapping,
        settings_rows,
    )
    from lagscope.instrument.record import RequestTiming, build_header, build_metrics
    from lagscope.instrument.request_start import parse_request_start, queue_ms

# Each public name -> the submodule that defines it.
_HOME = {
    "ConnectionTracker": "connections",
    "Disclosure": "disclosure",
    "decide": "disclosure",
    "is_loopback": "disclosure",
    "InstrumentOptions": "options",
    "OptionsError": "options",
    "options_from_mapping": "options",
    "settings_rows": "options",
    "RequestTiming": "record",
    "build_header": "record",
    "build_metrics": "record",
    "parse_request_start": "request_start",
    "queue_ms": "request_start",
}

__all__ = [
    "ConnectionTracker",
    "Disclosure",
    "InstrumentOptions",
    "OptionsError",
    "RequestTiming",
    "build_header",
    "build_metrics",
    "decide",
    "is_loopback",
    "options_from_mapping",
    "parse_request_start",
    "queue_ms",
    "settings_rows",
]


__getattr__ = lazy_exports(__name__, _HOME)

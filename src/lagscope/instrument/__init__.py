"""The instrumentation core shared by the Django and WSGI middlewares. Pure: no sockets,
no settings, no clock of its own (every timestamp is passed in).

* :mod:`.record`: the per-request timing record and the Server-Timing metrics built from it;
* :mod:`.entry`: request entry, shared by the Django and WSGI middlewares;
* :mod:`.shapes`: statement shapes (a hash of normalized SQL) for the repeat counts;
* :mod:`.request_start`: queue time from ``X-Request-Start``;
* :mod:`.connections`: first request on a client connection, with bounded memory;
* :mod:`.disclosure`: who may see which metrics;
* :mod:`.options`: the one typed table of settings.
"""

from __future__ import annotations

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

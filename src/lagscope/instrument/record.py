"""The per-request timing record and the metrics built from it. Pure.

A :class:`RequestTiming` is filled in by a shell (the Django or WSGI middleware, the
database hooks) with timestamps from one clock, in seconds. :func:`build_metrics` turns
it into Server-Timing metrics for a given disclosure level. Metric names are a stable
contract (docs/server-timing.md); the probe computes "outside the app" as time to first
byte minus ``total``.
"""

from __future__ import annotations

import functools
import re

from lagscope.instrument.disclosure import Disclosure
from lagscope.instrument.servertiming import Metric, format_metric

__all__ = [
    "CONN",
    "DB",
    "DBCONN",
    "DBPOOL",
    "DBSHAPES",
    "QUEUE",
    "THREAD",
    "TOTAL",
    "TPL",
    "VIEW",
    "RequestTiming",
    "build_header",
    "build_metrics",
    "parse_dbshapes",
]

# Metric names: stable, documented in docs/server-timing.md. Do not rename.
TOTAL = "total"  # app time: middleware entry to response ready
VIEW = "view"  # URL resolved (process_view) to view returned, template rendering excluded
TPL = "tpl"  # TemplateResponse rendering
DB = "db"  # query execution time; desc "<n> queries"
DBCONN = "dbconn"  # new database connections opened; desc "<n> connects"
DBPOOL = "dbpool"  # connections checked out of a pool; desc "<n> checkouts"
# distinct statement shapes; dur: time in the most executed shape;
# desc "<n> shapes, max <m> repeats" (m: executions of the most executed shape)
DBSHAPES = "dbshapes"
CONN = "conn"  # client connection; desc "new" or "reused"
QUEUE = "queue"  # proxy request start to app entry
THREAD = "thread"  # desc: the worker thread's name


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _shapes_desc(shapes: int, repeats: int) -> str:
    return f"{_plural(shapes, 'shape')}, max {_plural(repeats, 'repeat')}"


_SHAPES_DESC = re.compile(r"(\d+) shapes?, max (\d+) repeats?")


def parse_dbshapes(desc: str | None) -> tuple[int, int] | None:
    """(distinct shapes, executions of the most executed one) from a ``dbshapes`` desc."""
    m = _SHAPES_DESC.fullmatch(desc or "")
    return None if m is None else (int(m.group(1)), int(m.group(2)))


class RequestTiming:
    """Timestamps and counters for one request; seconds on the shell's clock.

    Mutable on purpose: the middleware, the query wrapper and the connect hook all add to
    the same record while the request runs, from whichever thread runs that part.
    """

    __slots__ = (
        "connects",
        "db_count",
        "db_s",
        "dbconn_count",
        "dbconn_s",
        "dbpool_count",
        "dbpool_s",
        "end_s",
        "first_on_connection",
        "last_mark_s",
        "queue_ms",
        "shape_counts",
        "shape_s",
        "start_s",
        "thread",
        "tpl_end_s",
        "tpl_start_s",
        "view_end_s",
        "view_start_s",
    )

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.end_s: float | None = None
        self.view_start_s: float | None = None
        self.view_end_s: float | None = None
        self.tpl_start_s: float | None = None
        self.tpl_end_s: float | None = None
        self.db_s = 0.0
        self.db_count = 0
        self.dbconn_s = 0.0
        self.dbconn_count = 0
        self.dbpool_s = 0.0
        self.dbpool_count = 0
        # (end_s, duration_s, alias, vendor) per new connection, for the OTel bridge.
        self.connects: list[tuple[float, float, str, str]] | None = None
        # Statement shape hash -> executions and seconds (lagscope.instrument.shapes).
        self.shape_counts: dict[int, int] = {}
        self.shape_s: dict[int, float] = {}
        # None: the server gave nothing that identifies the client connection.
        self.first_on_connection: bool | None = None
        self.queue_ms: float | None = None
        self.thread: str | None = None
        # The latest instrumentation timestamp; a connect that cannot be timed exactly is
        # bounded from above by "now minus the last mark".
        self.last_mark_s = start_s

    def __repr__(self) -> str:
        return (
            f"<RequestTiming total_s={self.total_s()} db={self.db_count}q/{self.db_s:.6f}s "
            f"dbconn={self.dbconn_count}/{self.dbconn_s:.6f}s "
            f"first_on_connection={self.first_on_connection}>"
        )

    def total_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s

    def add_query(self, duration_s: float, end_s: float, shape: int | None = None) -> None:
        self.db_s += duration_s
        self.db_count += 1
        self.last_mark_s = end_s
        if shape is not None:
            counts = self.shape_counts
            counts[shape] = counts.get(shape, 0) + 1
            self.shape_s[shape] = self.shape_s.get(shape, 0.0) + duration_s

    def top_shape(self) -> tuple[int, int, float] | None:
        """(distinct shapes, executions of the most executed one, its seconds), or None.

        Among shapes executed equally often, the one that took longest.
        """
        counts = self.shape_counts
        if not counts:
            return None
        shape_s = self.shape_s
        top = max(counts, key=lambda k: (counts[k], shape_s[k]))
        return len(counts), counts[top], shape_s[top]

    def add_connect(
        self, duration_s: float, end_s: float, alias: str = "", vendor: str = ""
    ) -> None:
        duration_s = max(duration_s, 0.0)
        self.dbconn_s += duration_s
        self.dbconn_count += 1
        self.last_mark_s = end_s
        if self.connects is None:
            self.connects = []
        self.connects.append((end_s, duration_s, alias, vendor))

    def add_checkout(self, duration_s: float, end_s: float) -> None:
        self.dbpool_s += max(duration_s, 0.0)
        self.dbpool_count += 1
        self.last_mark_s = end_s


_Part = tuple[str, "float | None", "str | None"]


def _parts(timing: RequestTiming, level: Disclosure) -> list[_Part]:
    """(name, dur_ms, desc) for what ``level`` allows, in the documented order."""
    total_s = timing.total_s()
    if level is Disclosure.NONE or total_s is None:
        return []
    out: list[_Part] = [(TOTAL, total_s * 1e3, None)]
    if level is Disclosure.TOTAL:
        return out
    if timing.view_start_s is not None:
        view_end_s = timing.view_end_s if timing.view_end_s is not None else timing.end_s
        assert view_end_s is not None
        out.append((VIEW, max(view_end_s - timing.view_start_s, 0.0) * 1e3, None))
    if timing.tpl_start_s is not None and timing.tpl_end_s is not None:
        out.append((TPL, max(timing.tpl_end_s - timing.tpl_start_s, 0.0) * 1e3, None))
    if timing.db_count:
        queries = "1 query" if timing.db_count == 1 else f"{timing.db_count} queries"
        out.append((DB, timing.db_s * 1e3, queries))
    top = timing.top_shape()
    if top is not None:
        out.append((DBSHAPES, top[2] * 1e3, _shapes_desc(top[0], top[1])))
    if timing.dbconn_count:
        out.append((DBCONN, timing.dbconn_s * 1e3, _plural(timing.dbconn_count, "connect")))
    if timing.dbpool_count:
        out.append((DBPOOL, timing.dbpool_s * 1e3, _plural(timing.dbpool_count, "checkout")))
    if timing.first_on_connection is not None:
        out.append((CONN, None, "new" if timing.first_on_connection else "reused"))
    if timing.queue_ms is not None:
        out.append((QUEUE, timing.queue_ms, None))
    if timing.thread is not None:
        out.append((THREAD, None, timing.thread))
    return out


def build_metrics(timing: RequestTiming, level: Disclosure) -> tuple[Metric, ...]:
    """The metrics ``level`` allows, in a fixed order; empty when nothing may be shown."""
    return tuple(Metric(name, dur_ms, desc) for name, dur_ms, desc in _parts(timing, level))


@functools.lru_cache(maxsize=256)
def _format_fixed(name: str, desc: str) -> str:
    # Metrics without a duration repeat ("conn;desc=reused", "thread;desc=waitress-0"):
    # format each distinct one once.
    return format_metric(name, None, desc)


def build_header(timing: RequestTiming, level: Disclosure) -> str | None:
    """The Server-Timing value for ``level``, or None when nothing may be shown.

    Same metrics and order as :func:`build_metrics`, each formatted by
    :func:`lagscope.instrument.servertiming.format_metric`.
    """
    parts = _parts(timing, level)
    if not parts:
        return None
    return ", ".join(
        format_metric(name, dur_ms, desc) if dur_ms is not None else _format_fixed(name, desc or "")
        for name, dur_ms, desc in parts
    )

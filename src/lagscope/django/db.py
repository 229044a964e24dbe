"""Database observation through Django's supported hooks; no cursor is ever patched.

* Queries: one ``connection.execute_wrapper()`` is entered on each ``DatabaseWrapper``
  when it first connects (the ``connection_created`` signal) and stays for the wrapper's
  life. It times the query only while a request is being instrumented (the
  :data:`current` context variable holds its record); otherwise it just calls through.
  A context variable, unlike a thread-local, follows the request into the thread that
  ``sync_to_async`` uses for the ORM in async views.
* Connects: ``connection_created`` fires at the end of ``BaseDatabaseWrapper.connect()``.
  The start is the ``close_at`` deadline Django computed from ``time.monotonic()`` just
  before connecting (``close_at - CONN_MAX_AGE``), which is exact when CONN_MAX_AGE is a
  number and the monotonic clock is fine-grained. Otherwise (CONN_MAX_AGE=None, or
  Windows before Python 3.13 where ``monotonic`` ticks every 15.6 ms) the connect is
  bounded from above by the time since the request's previous instrumentation point.
  With Django's native pool (PostgreSQL ``OPTIONS={"pool": ...}``) each checkout fires
  the signal too; those are reported as ``dbpool`` (checkouts and their wait), not as
  ``dbconn``, because the pool's own workers open the connections.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from lagscope.instrument.record import RequestTiming
from lagscope.instrument.shapes import statement_shape

__all__ = ["current", "install"]

logger = logging.getLogger("lagscope")

# The record of the request being instrumented in this context, or None.
current: contextvars.ContextVar[RequestTiming | None] = contextvars.ContextVar(
    "lagscope_request_timing", default=None
)

# The shells' clock; the middleware uses the same one for its own timestamps.
clock: Callable[[], float] = time.perf_counter

# Reading close_at is only worth it when monotonic resolves well below a millisecond.
_MONOTONIC_FINE = time.get_clock_info("monotonic").resolution < 1e-4


def _observe_query(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    timing = current.get()
    if timing is None:
        return execute(sql, params, many, context)
    start_s = clock()
    try:
        return execute(sql, params, many, context)
    finally:
        end_s = clock()
        # psycopg's sql.Composed and other non-str statements get no shape.
        shape = statement_shape(sql) if isinstance(sql, str) else None
        timing.add_query(end_s - start_s, end_s, shape)


def connect_duration_s(
    close_at: float | None,
    conn_max_age: object,
    now_monotonic_s: float,
    fallback_s: float,
) -> float:
    """How long the connect that just finished took. Pure.

    ``close_at`` and ``now_monotonic_s`` are on Django's ``time.monotonic`` clock;
    ``fallback_s`` is the upper bound from the request's own clock.
    """
    if (
        _MONOTONIC_FINE
        and close_at is not None
        and isinstance(conn_max_age, (int, float))
        and not isinstance(conn_max_age, bool)
    ):
        exact_s = now_monotonic_s - (close_at - conn_max_age)
        if 0.0 <= exact_s <= fallback_s + 1e-3:
            return exact_s
    return fallback_s


def _on_connection_created(sender: object, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    try:
        _attach(connection)
        timing = current.get()
        if timing is None:
            return
        now_s = clock()
        duration_s = connect_duration_s(
            getattr(connection, "close_at", None),
            connection.settings_dict.get("CONN_MAX_AGE"),
            time.monotonic(),
            now_s - timing.last_mark_s,
        )
        options = connection.settings_dict.get("OPTIONS") or {}
        if connection.vendor == "postgresql" and options.get("pool"):
            timing.add_checkout(duration_s, now_s)
        else:
            timing.add_connect(duration_s, now_s, connection.alias, connection.vendor)
    except Exception:  # instrumentation must never break the connect
        logger.exception("lagscope: could not record a database connect")


def _attach(connection: BaseDatabaseWrapper) -> None:
    if _observe_query not in connection.execute_wrappers:
        # The list that the documented execute_wrapper() context manager pushes onto,
        # held for the connection object's lifetime instead of per block (a suspended
        # context manager would pop it when garbage-collected). Index 0 because
        # execute_wrapper() pops the *last* entry on exit: a user's block that is open
        # while the connection opens must still pop its own wrapper, not ours.
        connection.execute_wrappers.insert(0, _observe_query)


def install() -> None:
    """Connect the hooks (AppConfig.ready). Idempotent."""
    connection_created.connect(_on_connection_created, dispatch_uid="lagscope.db.connect")
    # Connections opened before the app was ready (management commands, test setup).
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            _attach(conn)

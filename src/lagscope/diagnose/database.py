"""The database rung: connect time and ``SELECT 1`` straight through psycopg, and a
``gssencmode=disable`` A/B. The only diagnose module that talks to a database.

A password never leaves this module: the DSN is shown by :func:`lagscope.redact.dsn_params`,
and any text psycopg returns goes through :func:`lagscope.redact.text` before a message.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any

from lagscope import redact
from lagscope.bounded import call_within
from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import DatabaseProbe, figure, metric_ms, summary_of
from lagscope.diagnose.model import Figure
from lagscope.diagnose.options import DiagnoseOptions
from lagscope.dsn import Dsn
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.net import Clock

__all__ = ["SessionCounter", "database_rung", "probe_database", "session_counter"]

# The session count is best effort: its connect may take at most this share of the time
# left, so that a database that never answers cannot take the app's measurement's time.
_COUNTER_SHARE = 0.25
# ... and never less than this (seconds).
_COUNTER_MIN_S = 0.1


def database_rung(run: LadderRun, dsn: Dsn, sessions_per_request: float | None) -> DatabaseProbe:
    """The rung: :func:`probe_database` within the run, with the sessions PostgreSQL
    counted per request of the cold/warm rung."""
    t0 = run.start("database")
    db = probe_database(dsn, run.plan.db_samples, run.probe.timeout_s, run.clock, run.run_end)
    db = replace(db, sessions_per_request=sessions_per_request)
    figures = [
        Figure("dsn", db.shown_dsn),
        figure("connect_ms", summary_of(db.connect_ms)),
        figure("select_1_ms", summary_of(db.select1_ms)),
        figure("connect_gssencmode_disable_ms", summary_of(db.gss_disabled_connect_ms)),
        Figure("sessions_per_request", sessions_per_request),
        figure("app_dbconn_ms", summary_of(metric_ms(r, "dbconn") for r in run.records)),
    ]
    run.done("database", "The database directly", t0, figures, (db.error,) if db.error else ())
    return db


def session_counter(opts: DiagnoseOptions, left_s: float) -> SessionCounter | None:
    """A counter on ``--database``, its connect bounded by a share of the time left."""
    if opts.database is None:
        return None
    limit_s = max(_COUNTER_MIN_S, min(opts.probe.timeout_s, left_s * _COUNTER_SHARE))
    return SessionCounter(opts.database, limit_s)


def probe_database(
    dsn: Dsn, samples: int, timeout_s: float, clock: Clock, run_end_ns: int | None = None
) -> DatabaseProbe:
    """Connects and round trips; each connect bounded as a whole by ``timeout_s`` and by
    the run's end (``run_end_ns``, --max-time), each host within it by libpq's own
    ``connect_timeout``. A database that does not answer is a one-line error naming it."""
    import psycopg  # dsn.parse has checked that it is installed

    params = dsn.connect_kwargs()
    password = dsn.password
    shown = redact.dsn_params(params)

    def connect(extra: dict[str, Any]) -> tuple[float, Any]:
        limit_s = timeout_s
        if run_end_ns is not None:
            limit_s = min(limit_s, (run_end_ns - clock.now_ns()) / 1e9)
        bound = "--max-time" if limit_s < timeout_s else "--timeout"
        if limit_s <= 0:
            raise LagscopeError("database", f"{shown}: no time left (--max-time)", ExitCode.TIMEOUT)
        t0 = clock.now_ns()
        try:
            conn = call_within(
                limit_s,
                lambda: psycopg.connect(
                    **{**params, "connect_timeout": _libpq_timeout(limit_s), **extra}
                ),
                "the database connect",
            )
        except TimeoutError:
            raise LagscopeError(
                "database",
                f"{shown}: no answer within {limit_s:.3g} s ({bound})",
                ExitCode.TIMEOUT,
            ) from None
        return (clock.now_ns() - t0) / 1e6, conn

    connects: list[float] = []
    selects: list[float] = []
    try:
        for _ in range(samples):
            ms, conn = connect({})
            connects.append(ms)
            with conn:
                t0 = clock.now_ns()
                conn.execute("SELECT 1").fetchone()
                selects.append((clock.now_ns() - t0) / 1e6)
        gss_off: list[float] = []
        host = str(params.get("host") or "")
        tcp = bool(host) and not host.startswith("/")
        if tcp and str(params.get("gssencmode", "")) != "disable":
            for _ in range(samples):
                ms, conn = connect({"gssencmode": "disable"})
                conn.close()
                gss_off.append(ms)
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        timed_out = isinstance(exc, psycopg.errors.ConnectionTimeout)
        raise LagscopeError(
            "database",
            f"{shown}: {redact.text(first_line, [password])}",
            ExitCode.TIMEOUT if timed_out else ExitCode.CONNECT,
        ) from None
    gss_attempted = bool(gss_off) and min(connects) > max(gss_off)
    return DatabaseProbe(
        shown_dsn=shown,
        connect_ms=tuple(connects),
        select1_ms=tuple(selects),
        gss_attempted=gss_attempted,
        gss_disabled_connect_ms=tuple(gss_off),
    )


def _libpq_timeout(limit_s: float) -> int:
    # libpq's connect_timeout: whole seconds, per host, 0 is "forever" and below 2 counts
    # as 2. A second above the bound, so that the exact bound (call_within) says it first
    # and the abandoned attempt still ends.
    return max(2, math.ceil(limit_s) + 1)


class SessionCounter:
    """Counts the sessions PostgreSQL itself records (``pg_stat_database.sessions``,
    PostgreSQL 14+) while the app is measured: ground truth for how often the app
    connects, whether or not it sends Server-Timing. Best effort: ``None`` when the
    server cannot say."""

    _SQL = "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database"

    def __init__(self, dsn: Dsn, limit_s: float) -> None:
        """``limit_s`` bounds the connect as a whole: the count is best effort and must not
        take the time the run needs to measure the app. ``error`` says why there is no
        count when the database did not answer."""
        self._conn: Any = None
        self.error: str | None = None
        try:
            import psycopg
        except ImportError:
            return
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError, ValueError)
        kwargs = dsn.connect_kwargs()
        try:
            self._conn = call_within(
                limit_s,
                lambda: psycopg.connect(
                    **kwargs, connect_timeout=_libpq_timeout(limit_s), autocommit=True
                ),
                "the session counter's connect",
            )
        except TimeoutError:
            self.error = (
                f"{redact.dsn_params(kwargs)} did not answer within {limit_s:.3g} s "
                "(the session count was not taken)"
            )
        except self._errors:
            # Best effort: the database rung itself reports what is wrong with the DSN.
            self.close()

        if self._conn is not None:
            # PostgreSQL < 15 has no such setting; the snapshot is cleared per read anyway.
            with contextlib.suppress(*self._errors):
                self._conn.execute("SET stats_fetch_consistency = none")

    def read(self) -> int | None:
        if self._conn is None:
            return None
        try:
            self._conn.execute("SELECT pg_stat_clear_snapshot()")
            row = self._conn.execute(self._SQL).fetchone()
        except self._errors:
            self.close()
            return None
        return int(row[0]) if row else None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

"""The database rung: connect time and ``SELECT 1`` straight through psycopg, and a
``gssencmode=disable`` A/B. The only diagnose module that talks to a database.

A password never leaves this module: the DSN is shown by :func:`lagscope.redact.dsn_params`,
and any text psycopg returns goes through :func:`lagscope.redact.text` before a message.
"""

from __future__ import annotations

import contextlib
from typing import Any

from lagscope import redact
from lagscope.diagnose.evidence import DatabaseProbe
from lagscope.dsn import Dsn
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.net import Clock

__all__ = ["SessionCounter", "probe_database"]


def probe_database(dsn: Dsn, samples: int, timeout_s: float, clock: Clock) -> DatabaseProbe:
    import psycopg  # dsn.parse has checked that it is installed

    params = dsn.connect_kwargs()
    password = dsn.password
    shown = redact.dsn_params(params)
    connect_timeout = max(1, round(timeout_s))

    def connect(extra: dict[str, Any]) -> tuple[float, Any]:
        t0 = clock.now_ns()
        conn = psycopg.connect(**{**params, "connect_timeout": connect_timeout, **extra})
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
        raise LagscopeError(
            "database", f"{shown}: {redact.text(first_line, [password])}", ExitCode.CONNECT
        ) from None
    gss_attempted = bool(gss_off) and min(connects) > max(gss_off)
    return DatabaseProbe(
        shown_dsn=shown,
        connect_ms=tuple(connects),
        select1_ms=tuple(selects),
        gss_attempted=gss_attempted,
        gss_disabled_connect_ms=tuple(gss_off),
    )


class SessionCounter:
    """Counts the sessions PostgreSQL itself records (``pg_stat_database.sessions``,
    PostgreSQL 14+) while the app is measured: ground truth for how often the app
    connects, whether or not it sends Server-Timing. Best effort: ``None`` when the
    server cannot say."""

    _SQL = "SELECT coalesce(sum(sessions), 0) FROM pg_stat_database"

    def __init__(self, dsn: Dsn, timeout_s: float) -> None:
        self._conn: Any = None
        try:
            import psycopg
        except ImportError:
            return
        self._errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError, ValueError)
        try:
            self._conn = psycopg.connect(
                **dsn.connect_kwargs(), connect_timeout=max(1, round(timeout_s)), autocommit=True
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

"""The findings of ``lagscope db``, one small pure function each, thresholds in one table.

Ids and severities are the vocabulary of ``lagscope diagnose``:

* ``db-connect-slow``: one connect costs more than a request should wait for. The
  baseline here is 4.5–12 ms for PostgreSQL on loopback (trust / scram); 100 ms and more
  is the signature of GSSAPI negotiation (psycopg2 #1049: 111 ms against 3.2 ms with
  ``gssencmode=disable``), of a name that resolves to ::1 first, or of security software.
* ``db-connect-per-request``: ``CONN_MAX_AGE=0`` on a network database without a pool,
  so every request pays the connect (measured: the 500-row JSON view went from ~14 to
  ~28 ms p50).
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.dbcheck.model import AliasResult, Finding, Severity

__all__ = ["THRESHOLDS", "Threshold", "findings_for", "severity_of"]


@dataclass(frozen=True)
class Threshold:
    """p50 connect time at or above which a finding has this severity, in ms."""

    warning_ms: float
    critical_ms: float


THRESHOLDS: dict[str, Threshold] = {
    "db-connect-slow": Threshold(warning_ms=20.0, critical_ms=100.0),
    # Below warning_ms the per-request connect is still reported, as info.
    "db-connect-per-request": Threshold(warning_ms=2.0, critical_ms=20.0),
}

# The GSS A/B counts when disabling GSS saves this much per connect, and this share.
GSS_SAVING_MS = 10.0
GSS_SAVING_RATIO = 0.5


def severity_of(rule: str, value_ms: float) -> Severity | None:
    """The severity of ``rule`` for ``value_ms``; None below the lowest threshold."""
    t = THRESHOLDS[rule]
    if value_ms >= t.critical_ms:
        return "critical"
    if value_ms >= t.warning_ms:
        return "warning"
    return None


def _gss_saving_ms(result: AliasResult) -> float | None:
    if result.connect is None or result.connect_gss_disabled is None:
        return None
    saving = result.connect.p50_ms - result.connect_gss_disabled.p50_ms
    if saving >= GSS_SAVING_MS and saving >= GSS_SAVING_RATIO * result.connect.p50_ms:
        return saving
    return None


def _connect_fix(result: AliasResult) -> str:
    s = result.settings
    fixes = []
    if _gss_saving_ms(result) is not None:
        fixes.append("""add "gssencmode": "disable" to OPTIONS""")
    if s.host == "localhost":
        fixes.append("use HOST '127.0.0.1' (or '::1') instead of 'localhost'")
    fixes.append(
        "keep connections open so that no request pays the connect: a pool "
        """(OPTIONS={"pool": {...}}, PostgreSQL) or CONN_MAX_AGE > 0 with CONN_HEALTH_CHECKS"""
        if not s.persistent and not s.pool
        else "exclude security software from scanning the database connection"
    )
    return "; ".join(fixes)


def connect_slow(result: AliasResult) -> Finding | None:
    if result.connect is None:
        return None
    p50 = result.connect.p50_ms
    severity = severity_of("db-connect-slow", p50)
    if severity is None:
        return None
    evidence = f"connect p50 {p50:.1f} ms, max {result.connect.max_ms:.1f} ms"
    saving = _gss_saving_ms(result)
    if saving is not None and result.connect_gss_disabled is not None:
        evidence += (
            f"; with gssencmode=disable p50 {result.connect_gss_disabled.p50_ms:.1f} ms "
            f"({saving:.1f} ms less)"
        )
    return Finding(
        "db-connect-slow",
        severity,
        result.settings.alias,
        f"a connect to {result.settings.where()} takes {p50:.0f} ms",
        evidence,
        _connect_fix(result),
    )


def connect_per_request(result: AliasResult) -> Finding | None:
    s = result.settings
    if s.persistent or s.pool or not s.network:
        return None
    p50 = result.connect.p50_ms if result.connect is not None else None
    severity: Severity = (
        "warning" if p50 is None else (severity_of("db-connect-per-request", p50) or "info")
    )
    cost = "" if p50 is None else f" ({p50:.1f} ms p50)"
    return Finding(
        "db-connect-per-request",
        severity,
        s.alias,
        f"CONN_MAX_AGE=0 without a pool: every request opens a new connection{cost}",
        f"CONN_MAX_AGE={s.conn_max_age:g}, no pool"
        + ("" if p50 is None else f"; connect p50 {p50:.1f} ms"),
        "PostgreSQL with psycopg 3: OPTIONS={'pool': {'min_size': <threads>}} "
        "(or lagscope serve, which prewarms it); otherwise CONN_MAX_AGE=600 with "
        "CONN_HEALTH_CHECKS=True",
    )


RULES = (connect_slow, connect_per_request)


def findings_for(results: tuple[AliasResult, ...]) -> tuple[Finding, ...]:
    """Every finding for every reachable alias, critical first, in alias order."""
    order = {"critical": 0, "warning": 1, "info": 2}
    found = [
        f
        for result in results
        if result.error is None
        for rule in RULES
        if (f := rule(result)) is not None
    ]
    return tuple(sorted(found, key=lambda f: order[f.severity]))

"""The findings of ``manage.py lagscope db``: the rules and thresholds of ``lagscope
diagnose``, applied to each alias. Pure.

* ``db-connect-slow`` is diagnose's own rule
  (:func:`lagscope.diagnose.rules.database.db_connect_slow`) over this alias's connect
  samples and ``gssencmode=disable`` A/B, with diagnose's
  thresholds (``db_connect_slow_ms``, ``gss_saving_ms``, ``critical_ms``).
* ``db-connect-per-request`` is read from the settings here, where diagnose sees it in the
  responses: ``CONN_MAX_AGE=0`` on a network database without a pool means every request
  pays the measured connect. Its cost is the connect p50, so its severity follows
  diagnose's ``critical_ms`` like every diagnose finding; its fix is diagnose's.
"""

from __future__ import annotations

import dataclasses

from lagscope.dbcheck.model import AliasFinding, AliasResult
from lagscope.diagnose.evidence import DatabaseProbe, Evidence
from lagscope.diagnose.model import Environment, Figure, Finding
from lagscope.diagnose.rules import DB_KEEP_CONNECTIONS_FIX, db_connect_slow
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds

__all__ = ["CONFIRM", "connect_per_request", "connect_slow", "findings_for"]

CONFIRM = "python manage.py lagscope db"
_NO_ENVIRONMENT = Environment(
    os="", python="", proxy_vars=(), proxy_applies=False, security_source="", security_products=()
)


def connect_per_request(result: AliasResult, t: Thresholds) -> Finding | None:
    s = result.settings
    if s.persistent or s.pool or not s.network:
        return None
    p50 = result.connect.p50_ms if result.connect is not None else None
    cost = "" if p50 is None else f" ({p50:.1f} ms each, p50 of direct connects)"
    return Finding(
        id="db-connect-per-request",
        title="Every request opens a new database connection",
        severity="critical" if p50 is not None and p50 >= t.critical_ms else "warning",
        cost_ms=None if p50 is None else round(p50, 3),
        affects="every request",
        evidence=(
            Figure("conn_max_age_s", s.conn_max_age, "s"),
            Figure("pool", s.pool),
            Figure("connect_p50_ms", None if p50 is None else round(p50, 3), "ms"),
        ),
        fix=DB_KEEP_CONNECTIONS_FIX,
        confirm=CONFIRM,
        detail=f"DATABASES[{s.alias!r}] has CONN_MAX_AGE=0 and no pool: every request "
        f"connects{cost}.",
    )


def connect_slow(result: AliasResult, t: Thresholds, found: tuple[Finding, ...]) -> Finding | None:
    if result.connect is None:
        return None
    probe = DatabaseProbe(
        shown_dsn=result.settings.where(),
        connect_ms=result.connect.values_ms,
        select1_ms=result.select1.values_ms if result.select1 else (),
        gss_attempted=result.connect_gss_disabled is not None,
        gss_disabled_connect_ms=(
            result.connect_gss_disabled.values_ms if result.connect_gss_disabled else ()
        ),
    )
    evidence = Evidence(url=CONFIRM, loopback=True, environment=_NO_ENVIRONMENT, database=probe)
    finding = db_connect_slow(evidence, t, found)
    return None if finding is None else dataclasses.replace(finding, confirm=CONFIRM)


def findings_for(
    results: tuple[AliasResult, ...], t: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[AliasFinding, ...]:
    """Every finding for every reachable alias, most severe and costly first."""
    out: list[AliasFinding] = []
    for result in results:
        if result.error is not None:
            continue
        found: tuple[Finding, ...] = ()
        per_request = connect_per_request(result, t)
        if per_request is not None:
            found = (per_request,)
        slow = connect_slow(result, t, found)
        for finding in (*found, *((slow,) if slow else ())):
            out.append(AliasFinding(result.settings.alias, finding))
    return tuple(sorted(out, key=lambda f: f.finding.rank))

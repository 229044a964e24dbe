"""Measure each ``DATABASES`` alias with the project's own settings and driver.

Each sample is what a request pays for a new connection: Django's own
``DatabaseWrapper.connect()`` (driver connect, session set-up, ``connection_created``
receivers), on a fresh wrapper made from a copy of the alias's settings, closed again
after each sample. A native pool is left out of the copy: the point is the connect its
workers pay. The project's connections and pools are never touched.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from typing import Any

from lagscope import redact
from lagscope.bounded import call_within
from lagscope.dbcheck.model import AliasResult, AliasSettings, DbReport, Samples
from lagscope.dbcheck.rules import findings_for

__all__ = ["alias_settings", "bounded_connect_timeout", "measure"]

MAX_SAMPLES = 100

# libpq's connect_timeout bounds one attempt, and a connect may make several (each address;
# SSL, then plain text with sslmode=prefer): --timeout bounds the whole connect
# (lagscope.bounded), each in a thread of its own with Django's wrapper used only there.
_CONNECT = "the connect (--timeout)"


def _gssencmode(settings_dict: dict[str, Any], vendor: str) -> str | None:
    host = str(settings_dict.get("HOST") or "")
    if vendor != "postgresql" or not host or host.startswith("/"):
        return None  # libpq attempts GSS encryption over TCP only
    options = settings_dict.get("OPTIONS") or {}
    return str(options.get("gssencmode") or os.environ.get("PGGSSENCMODE") or "prefer")


def alias_settings(alias: str, settings_dict: dict[str, Any], vendor: str) -> AliasSettings:
    options = settings_dict.get("OPTIONS") or {}
    max_age = settings_dict.get("CONN_MAX_AGE", 0)
    return AliasSettings(
        alias=alias,
        vendor=vendor,
        host=str(settings_dict.get("HOST") or ""),
        port=str(settings_dict.get("PORT") or ""),
        name=str(settings_dict.get("NAME") or ""),
        conn_max_age=None if max_age is None else float(max_age),
        health_checks=bool(settings_dict.get("CONN_HEALTH_CHECKS")),
        pool=vendor == "postgresql" and bool(options.get("pool")),
        gssencmode=_gssencmode(settings_dict, vendor),
    )


def bounded_connect_timeout(configured: object, limit_s: int) -> int:
    """The connect timeout a measurement uses: the project's own when it is a shorter bound,
    else ``limit_s``. libpq and MySQL read 0 (or nothing, or a negative number) as "wait
    forever", so a host that never answers would hang the command whatever --timeout says."""
    try:
        own = int(str(configured))
    except ValueError:
        return limit_s
    return own if 0 < own < limit_s else limit_s


def _wrapper(alias: str, settings_dict: dict[str, Any], **options: object) -> Any:
    from django.db.utils import load_backend

    sd = copy.deepcopy(settings_dict)
    sd["OPTIONS"] = {k: v for k, v in (sd.get("OPTIONS") or {}).items() if k != "pool"}
    sd["OPTIONS"].update(options)
    sd["CONN_MAX_AGE"] = 0
    return load_backend(sd["ENGINE"]).DatabaseWrapper(sd, alias)


def _connect_once(make: Callable[[], Any], clock: Callable[[], float]) -> float:
    wrapper = make()
    start_s = clock()
    try:
        wrapper.connect()
        return (clock() - start_s) * 1e3
    finally:
        wrapper.close()


def _measure_alias(
    alias: str,
    settings_dict: dict[str, Any],
    samples: int,
    clock: Callable[[], float],
    connect_timeout_s: int,
) -> AliasResult:
    timeout: dict[str, object] = {}
    vendor_probe = _wrapper(alias, settings_dict)
    vendor = str(vendor_probe.vendor)
    settings = alias_settings(alias, settings_dict, vendor)
    if vendor in ("postgresql", "mysql"):
        timeout["connect_timeout"] = bounded_connect_timeout(
            (settings_dict.get("OPTIONS") or {}).get("connect_timeout"), connect_timeout_s
        )

    def make() -> Any:
        return _wrapper(alias, settings_dict, **timeout)

    def make_no_gss() -> Any:
        return _wrapper(alias, settings_dict, **timeout, gssencmode="disable")

    ab = settings.gssencmode not in (None, "disable")
    connect_ms: list[float] = []
    no_gss_ms: list[float] = []

    def round_trips() -> list[float]:
        wrapper = make()
        try:
            wrapper.connect()
            sql = "SELECT 1" + wrapper.features.bare_select_suffix
            out: list[float] = []
            with wrapper.cursor() as cursor:
                for _ in range(samples):
                    start_s = clock()
                    cursor.execute(sql)
                    cursor.fetchone()
                    out.append((clock() - start_s) * 1e3)
            return out
        finally:
            wrapper.close()

    try:
        for _ in range(samples):
            connect_ms.append(
                call_within(connect_timeout_s, lambda: _connect_once(make, clock), _CONNECT)
            )
            if ab:
                # Interleaved, so that a CPU speed change hits both sides alike.
                no_gss_ms.append(
                    call_within(
                        connect_timeout_s, lambda: _connect_once(make_no_gss, clock), _CONNECT
                    )
                )
        # One connect, then round trips that each take well under a connect.
        select_ms = call_within(connect_timeout_s * 2, round_trips, _CONNECT)
    except Exception as exc:
        raw = str(exc) or type(exc).__name__
        message = " ".join(redact.text(raw, [str(settings_dict.get("PASSWORD") or "")]).split())
        if connect_ms:
            message = f"failed after {len(connect_ms)} good connects: {message}"
        return AliasResult(settings, error=message)
    return AliasResult(
        settings,
        connect=Samples(tuple(connect_ms)),
        select1=Samples(tuple(select_ms)),
        connect_gss_disabled=Samples(tuple(no_gss_ms)) if ab else None,
    )


def measure(
    databases: dict[str, dict[str, Any]],
    aliases: Iterable[str],
    *,
    samples: int,
    clock: Callable[[], float],
    connect_timeout_s: int = 10,
) -> DbReport:
    """Measure ``aliases`` of ``databases`` (``django.db.connections.settings``)."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ValueError(f"samples must be 1..{MAX_SAMPLES}, not {samples}")
    results = tuple(
        _measure_alias(alias, databases[alias], samples, clock, connect_timeout_s)
        for alias in aliases
    )
    return DbReport(results, findings_for(results), samples)

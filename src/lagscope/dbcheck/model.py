"""The ``lagscope db`` report model: frozen dataclasses, and their JSON form. Pure.

Nothing here can hold a password: :class:`AliasSettings` names each field it keeps, and
the driver's ``OPTIONS`` are never copied in.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from lagscope.diagnose.model import AFFECTS, SEVERITIES, Figure, Finding

__all__ = ["SCHEMA", "AliasFinding", "AliasResult", "AliasSettings", "DbReport", "Samples"]

SCHEMA = "lagscope.db/1"


@dataclass(frozen=True)
class Samples:
    """Durations of repeated measurements, in milliseconds, in the order taken."""

    values_ms: tuple[float, ...]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.values_ms)

    @property
    def max_ms(self) -> float:
        return max(self.values_ms)


@dataclass(frozen=True)
class AliasSettings:
    """The settings of one ``DATABASES`` alias that decide what a request pays to connect."""

    alias: str
    vendor: str  # Django's connection.vendor: "postgresql", "sqlite", "mysql", ...
    host: str  # "" for a local socket / file database
    port: str
    name: str
    conn_max_age: float | None  # None: connections live forever
    health_checks: bool
    pool: bool  # Django's native pool (PostgreSQL OPTIONS={"pool": ...})
    # The effective libpq gssencmode (OPTIONS, else PGGSSENCMODE, else "prefer"); None when
    # not PostgreSQL or not a TCP connection (libpq attempts GSS encryption over TCP only).
    gssencmode: str | None = None

    @property
    def persistent(self) -> bool:
        return self.conn_max_age is None or self.conn_max_age > 0

    @property
    def network(self) -> bool:
        return self.vendor != "sqlite"

    def where(self) -> str:
        if not self.network:
            return f"{self.vendor} {self.name}"
        place = f"{self.host or 'local socket'}{':' + self.port if self.port else ''}"
        return f"{self.vendor} at {place}"


@dataclass(frozen=True)
class AliasResult:
    settings: AliasSettings
    connect: Samples | None = None  # what Django's connect() costs a request
    select1: Samples | None = None  # SELECT 1 round trip on an open connection
    # PostgreSQL only, when GSS encryption is attempted: the same connect with
    # gssencmode=disable, taken interleaved with ``connect``.
    connect_gss_disabled: Samples | None = None
    error: str | None = None  # the first connect failed: one line, password removed


@dataclass(frozen=True)
class AliasFinding:
    """A ``lagscope diagnose`` finding (same ids, severities and fixes) for one alias."""

    alias: str
    finding: Finding


@dataclass(frozen=True)
class DbReport:
    aliases: tuple[AliasResult, ...]
    findings: tuple[AliasFinding, ...]
    samples: int

    @property
    def unreachable(self) -> tuple[AliasResult, ...]:
        return tuple(a for a in self.aliases if a.error is not None)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for alias, result in zip(out["aliases"], self.aliases, strict=True):
            for key in ("connect", "select1", "connect_gss_disabled"):
                samples = getattr(result, key)
                if samples is not None:
                    alias[key].update(p50_ms=samples.p50_ms, max_ms=samples.max_ms)
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_json(cls, data: object) -> DbReport:
        """Rebuild a report from :meth:`to_json`'s form; ValueError names the first bad path."""
        root = _Reader(data, "$")
        if root.field("schema", str) != SCHEMA:
            raise ValueError(f"$.schema: expected {SCHEMA!r}")
        samples = root.field("samples", int)
        if not 1 <= samples <= 100:
            raise ValueError("$.samples: must be 1..100")
        return cls(
            aliases=tuple(_alias(r) for r in root.items("aliases")),
            findings=tuple(_alias_finding(r) for r in root.items("findings")),
            samples=samples,
        )


class _Reader:
    """Typed access to parsed JSON, with the path of whatever is wrong."""

    def __init__(self, value: object, path: str) -> None:
        self.value = value
        self.path = path

    def _dict(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise ValueError(f"{self.path}: expected an object")
        return self.value

    def field(self, key: str, kind: type[Any], optional: bool = False) -> Any:
        data = self._dict()
        if key not in data:
            raise ValueError(f"{self.path}.{key}: missing")
        value = data[key]
        if value is None and optional:
            return None
        ok = isinstance(value, kind) and not (
            kind not in (bool, object) and isinstance(value, bool)
        )
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        if not ok:
            raise ValueError(f"{self.path}.{key}: expected {kind.__name__}")
        return value

    def child(self, key: str) -> _Reader:
        return _Reader(self.field(key, dict), f"{self.path}.{key}")

    def items(self, key: str) -> list[_Reader]:
        values = self.field(key, list)
        return [_Reader(v, f"{self.path}.{key}[{i}]") for i, v in enumerate(values)]


def _samples(reader: _Reader, key: str) -> Samples | None:
    if reader.field(key, dict, optional=True) is None:
        return None
    child = reader.child(key)
    values = []
    for item in child.items("values_ms"):
        value = item.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{item.path}: expected a number")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{item.path}: expected a finite duration")
        values.append(float(value))
    if not values:
        raise ValueError(f"{child.path}.values_ms: empty")
    return Samples(tuple(values))


def _alias(r: _Reader) -> AliasResult:
    s = r.child("settings")
    settings = AliasSettings(
        alias=s.field("alias", str),
        vendor=s.field("vendor", str),
        host=s.field("host", str),
        port=s.field("port", str),
        name=s.field("name", str),
        conn_max_age=s.field("conn_max_age", float, optional=True),
        health_checks=s.field("health_checks", bool),
        pool=s.field("pool", bool),
        gssencmode=s.field("gssencmode", str, optional=True),
    )
    return AliasResult(
        settings,
        connect=_samples(r, "connect"),
        select1=_samples(r, "select1"),
        connect_gss_disabled=_samples(r, "connect_gss_disabled"),
        error=r.field("error", str, optional=True),
    )


def _alias_finding(r: _Reader) -> AliasFinding:
    f = r.child("finding")
    severity = f.field("severity", str)
    if severity not in SEVERITIES:
        raise ValueError(f"{f.path}.severity: expected one of {', '.join(SEVERITIES)}")
    affects = f.field("affects", str)
    if affects not in AFFECTS:
        raise ValueError(f"{f.path}.affects: unknown {affects!r}")
    evidence = []
    for item in f.items("evidence"):
        value = item.field("value", object, optional=True)
        if not isinstance(value, (str, int, float, bool, type(None))) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ValueError(f"{item.path}.value: expected a finite number, text or bool")
        evidence.append(
            Figure(
                item.field("name", str),
                value,
                item.field("unit", str),
                item.field("low", float, optional=True),
                item.field("high", float, optional=True),
            )
        )
    fixes = []
    for item in f.items("fix"):
        if not isinstance(item.value, str):
            raise ValueError(f"{item.path}: expected str")
        fixes.append(item.value)
    finding = Finding(
        id=f.field("id", str),
        title=f.field("title", str),
        severity=severity,
        cost_ms=f.field("cost_ms", float, optional=True),
        affects=affects,
        evidence=tuple(evidence),
        fix=tuple(fixes),
        confirm=f.field("confirm", str),
        detail=f.field("detail", str),
    )
    return AliasFinding(r.field("alias", str), finding)

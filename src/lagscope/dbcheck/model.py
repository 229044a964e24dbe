"""The ``lagscope db`` report model: frozen dataclasses, and their JSON form. Pure.

Nothing here can hold a password: :class:`AliasSettings` names each field it keeps, and
the driver's ``OPTIONS`` are never copied in.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from lagscope.diagnose.model import Finding

__all__ = ["AliasFinding", "AliasResult", "AliasSettings", "DbReport", "Samples"]


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
        return {"schema": "lagscope.db/1", **out}

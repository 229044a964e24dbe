"""Evidence built by hand for the pure diagnosis tests: requests, series, one Evidence."""

from __future__ import annotations

from lagscope.diagnose.evidence import AddressProbe, ColdWarm, Evidence, Resolution
from lagscope.diagnose.model import Environment
from lagscope.diagnose.rules import evaluate
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds
from lagscope.instrument.servertiming import Metric
from lagscope.probe.model import RequestRecord

__all__ = ["ENV", "T", "app", "coldwarm", "ev", "healthy_cw", "ids", "rec"]

T = DEFAULT_THRESHOLDS
ENV = Environment("Linux", "CPython 3.11", (), False, "unknown", ())


def rec(
    total: float,
    *,
    reused: bool = True,
    wait: float | None = None,
    receive: float = 0.05,
    connect: float | None = None,
    st: tuple[Metric, ...] = (),
    series: str = "warm",
    connection: int = 0,
) -> RequestRecord:
    wait_ms = total - receive - 0.01 - (connect or 0.0) if wait is None else wait
    return RequestRecord(
        series=series,
        index=0,
        connection=connection,
        reused=reused,
        status=200,
        http_version="1.1",
        start_ms=0.0,
        resolve_ms=None,
        connect_ms=None if reused else (connect if connect is not None else 0.05),
        tls_ms=None,
        send_ms=0.01,
        wait_ms=wait_ms,
        receive_ms=receive,
        total_ms=total,
        body_bytes=10,
        keep_alive=True,
        server_timing=st,
    )


def app(total: float, **extra: tuple[float | None, str | None]) -> tuple[Metric, ...]:
    out = [Metric("total", total, None)]
    out += [Metric(name, dur, desc) for name, (dur, desc) in extra.items()]
    return tuple(out)


def coldwarm(cold: list[RequestRecord], warm: list[RequestRecord], keep: bool = True) -> ColdWarm:
    return ColdWarm(
        tuple(cold), tuple(warm), (), keep, None if keep else "it sent Connection: close"
    )


def ids(ev: Evidence, t: Thresholds = T) -> dict[str, str]:
    return {f.id: f.severity for f in evaluate(ev, t)}


def ev(**kw: object) -> Evidence:
    return Evidence(url="http://127.0.0.1:8000/", loopback=True, environment=ENV, **kw)  # type: ignore[arg-type]


def healthy_cw() -> ColdWarm:
    cold = [rec(0.3 + 0.01 * i, reused=False, series="cold") for i in range(12)]
    warm = [rec(0.2 + 0.01 * i) for i in range(12)]
    return coldwarm(cold, warm)


def localhost_refused_on_ipv6() -> Resolution:
    """``localhost`` whose first address (::1) refuses and whose second (127.0.0.1) answers."""
    return Resolution(
        host="localhost",
        is_name=True,
        source="pinned",
        resolve_ms=(),
        addresses=(
            AddressProbe("::1", "ipv6", ("refused",) * 3, (0.05,) * 3),
            AddressProbe("127.0.0.1", "ipv4", ("connected",) * 3, (0.04,) * 3),
        ),
        hostname_connect_ms=(0.1, 0.1, 0.1),
    )

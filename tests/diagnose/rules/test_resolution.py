"""``localhost-fallback``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.evidence import (
    AddressProbe,
    Resolution,
)
from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, ev, localhost_refused_on_ipv6


def test_localhost_fallback_from_a_refused_first_address() -> None:
    res = localhost_refused_on_ipv6()
    found = {f.id: f for f in evaluate(ev(resolution=res), T)}
    assert set(found) == {"localhost-fallback"}
    assert found["localhost-fallback"].severity == "warning"
    assert found["localhost-fallback"].cost_ms == pytest.approx(0.05)


def _resolution(resolve_ms: float, first: str = "connected") -> Resolution:
    return Resolution(
        host="app.test",
        is_name=True,
        source="dns",
        resolve_ms=(resolve_ms,) * 3,
        addresses=(AddressProbe("127.0.0.1", "ipv4", (first,), (0.1,)),),
        hostname_connect_ms=(0.2,),
    )


def test_a_slow_lookup_is_slow_name_resolution_never_a_connect_tax() -> None:
    found = {f.id: f for f in evaluate(ev(resolution=_resolution(251.0)), T)}
    assert set(found) == {"slow-name-resolution"}
    assert found["slow-name-resolution"].cost_ms == pytest.approx(251.0)
    assert found["slow-name-resolution"].affects == "first request per connection"
    assert "--resolve app.test:127.0.0.1" in found["slow-name-resolution"].confirm


def test_a_fast_lookup_says_nothing() -> None:
    assert evaluate(ev(resolution=_resolution(0.2)), T) == ()


def test_an_address_that_drops_connects_is_priced_for_a_sequential_client() -> None:
    res = Resolution(
        host="localhost",
        is_name=True,
        source="pinned",
        resolve_ms=(),
        addresses=(
            AddressProbe("::1", "ipv6", ("timeout",), (3000.0,)),
            AddressProbe("127.0.0.1", "ipv4", ("connected",) * 3, (0.04,) * 3),
        ),
        hostname_connect_ms=(250.3,),
    )
    (finding,) = evaluate(ev(resolution=res), T)
    assert finding.id == "localhost-fallback" and finding.severity == "critical"
    assert finding.cost_ms == pytest.approx(3000.0)
    figures = {f.name: f.value for f in finding.evidence}
    assert figures["chrome_waits_ms"] == 300.0
    assert figures["happy_eyeballs_connect_ms"] == pytest.approx(250.3)

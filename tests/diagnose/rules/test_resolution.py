"""``localhost-fallback``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.evidence import (
    AddressProbe,
    Resolution,
)
from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, ev


def test_localhost_fallback_from_a_refused_first_address() -> None:
    res = Resolution(
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
    found = {f.id: f for f in evaluate(ev(resolution=res), T)}
    assert set(found) == {"localhost-fallback"}
    assert found["localhost-fallback"].severity == "warning"
    assert found["localhost-fallback"].cost_ms == pytest.approx(0.05)

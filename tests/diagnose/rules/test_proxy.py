"""``upstream-no-keepalive``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, coldwarm, ev, rec


def test_upstream_without_keepalive_when_the_app_sees_new_connections() -> None:
    st = app(1.0, conn=(None, "new"))
    warm = [rec(201.5, wait=201.4, st=st) for _ in range(8)]
    cold = [rec(201.8, reused=False, series="cold", st=st) for _ in range(8)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"upstream-no-keepalive"}
    assert found["upstream-no-keepalive"].cost_ms == pytest.approx(200.4, abs=0.5)

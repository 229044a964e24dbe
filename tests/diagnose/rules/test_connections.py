"""``connection-setup-tax`` and ``keepalive-refused``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, coldwarm, ev, healthy_cw, ids, rec


def test_a_healthy_stack_has_no_findings() -> None:
    assert ids(ev(coldwarm=healthy_cw())) == {}


def test_a_tax_on_new_connections_is_named_with_its_cost() -> None:
    cold = [rec(300.0 + i, reused=False, series="cold") for i in range(12)]
    warm = [rec(1.0 + 0.01 * i) for i in range(12)]
    findings = evaluate(ev(coldwarm=coldwarm(cold, warm)), T)
    assert [f.id for f in findings] == ["connection-setup-tax"]
    assert findings[0].severity == "critical"
    assert findings[0].cost_ms == pytest.approx(304.5, abs=1)


def test_a_difference_within_noise_is_not_a_tax() -> None:
    cold = [rec(v, reused=False, series="cold") for v in (1, 60, 2, 70, 3, 80, 1, 90)]
    warm = [rec(v) for v in (1, 50, 2, 60, 3, 70, 1, 80)]
    assert "connection-setup-tax" not in ids(ev(coldwarm=coldwarm(cold, warm)))


def test_keepalive_refused_and_a_tax_seen_outside_the_app() -> None:
    st = app(2.0)
    records = [rec(202.0, reused=False, series="cold", wait=201.9, st=st) for _ in range(8)]
    cw = coldwarm(records, records, keep=False)
    found = ids(ev(coldwarm=cw))
    assert found == {"keepalive-refused": "critical", "connection-setup-tax": "critical"}

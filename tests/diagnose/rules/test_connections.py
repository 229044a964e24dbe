"""``connection-setup-tax`` and ``keepalive-refused``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.rules import evaluate
from lagscope.diagnose.rules.connections import setup_cost_ms
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


def test_a_tax_is_named_when_only_some_warm_responses_keep_the_apps_time() -> None:
    """A server that claims a fixed app time longer than its fastest reused requests: those
    requests' Server-Timing is dropped as impossible, leaving two warm records with the
    app's time. Two cannot tell a difference from noise; the whole series can (a run of
    --quick against a 300 ms tax on a ten-asset page, which missed it)."""
    st = app(1.5)
    cold = [rec(302.0 + 0.5 * i, reused=False, series="cold", st=st) for i in range(8)]
    warm = [rec(1.53, st=st), rec(1.63, st=st)]
    warm += [rec(v) for v in (0.71, 1.27, 1.43, 1.18, 1.12, 0.61)]
    e = ev(coldwarm=coldwarm(cold, warm))
    got = setup_cost_ms(e)
    assert got is not None and got[1], got  # beyond noise
    tax = next(f for f in evaluate(e, T) if f.id == "connection-setup-tax")
    # Every new connection paid: not the slow-minority reading of the same records.
    assert tax.title.startswith("Every new connection pays")
    assert tax.cost_ms == pytest.approx(302.2, abs=1)


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

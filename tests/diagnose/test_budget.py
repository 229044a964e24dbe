"""The cold and warm budgets, from hand-built evidence."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.diagnose.budget import _ELASTIC, _settle, budgets
from lagscope.diagnose.model import BudgetItem
from support.diagnose_evidence import app, coldwarm, ev, rec


def test_budget_adds_up_to_the_measured_total() -> None:
    st = app(10.0, view=(8.0, None), db=(2.0, "3 queries"), queue=(1.0, None))
    cold = [rec(215.0, reused=False, series="cold", st=st) for _ in range(6)]
    warm = [rec(15.0, st=st) for _ in range(6)]
    for budget in budgets(ev(coldwarm=coldwarm(cold, warm))):
        top = sum(i.ms for i in budget.items if i.within is None)
        assert top == pytest.approx(budget.total_ms)
    cold_budget = budgets(ev(coldwarm=coldwarm(cold, warm)))[1]
    assert cold_budget.get("connection setup") == pytest.approx(200.0)


@given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(["transfer", "connection setup", "app", "queue", "proxy hop"]),
            st.floats(min_value=-50.0, max_value=500.0),
        ),
        max_size=5,
        unique_by=lambda p: p[0],
    ),
    total=st.floats(min_value=0.0, max_value=500.0),
)
def test_a_budget_never_has_a_negative_item_or_one_past_its_total(
    parts: list[tuple[str, float]], total: float
) -> None:
    """Whatever the medians say (setup is cold minus warm, and can be negative in noise; the
    transfer overlaps the app's timer): "unexplained" is never negative, and the elastic
    items are between 0 and the total."""
    items = _settle(
        [BudgetItem(n, ms if n in _ELASTIC else abs(ms) % (total + 1)) for n, ms in parts], total
    )
    assert items[-1].name == "unexplained" and items[-1].ms >= 0
    for i in items:
        if i.name in _ELASTIC:
            assert 0.0 <= i.ms <= max(total, 0.0) + 1e-9
    measured = sum(i.ms for i in items[:-1])
    if measured <= total:
        assert math.isclose(measured + items[-1].ms, total, abs_tol=1e-6)


def test_time_a_finding_prices_is_named_after_it_not_unexplained() -> None:
    """A proxy's upstream connect per request sits outside the app's account: the warm
    budget names it after the finding that prices it, and leaves nothing unexplained."""
    from lagscope.diagnose.rules import evaluate
    from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS

    st = app(5.0, conn=(None, "new"))
    cold = [rec(305.0 + 0.1 * i, reused=False, series="cold", st=st) for i in range(8)]
    warm = [rec(205.0 + 0.1 * i, st=st) for i in range(8)]
    evidence = ev(coldwarm=coldwarm(cold, warm))
    findings = evaluate(evidence, DEFAULT_THRESHOLDS)
    assert {f.id for f in findings} >= {"upstream-no-keepalive", "connection-setup-tax"}
    warm_budget = budgets(evidence, findings)[0]
    assert warm_budget.get("proxy: new upstream connection") == pytest.approx(200.0, abs=1.0)
    assert warm_budget.get("unexplained") < 1.0
    # Without the findings the same time is unexplained: the claim is the findings'.
    assert budgets(evidence)[0].get("unexplained") == pytest.approx(200.0, abs=1.0)
    for budget in budgets(evidence, findings):
        top = sum(i.ms for i in budget.items if i.within is None)
        assert top == pytest.approx(budget.total_ms)

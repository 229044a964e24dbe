"""The cold and warm budgets, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.budget import budgets
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

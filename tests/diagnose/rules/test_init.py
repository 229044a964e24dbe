"""The list of rules and ``evaluate``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.rules import RULES
from lagscope.diagnose.thresholds import docs_table
from support.diagnose_evidence import coldwarm, ev, ids, rec


def test_every_rule_is_listed_once_and_thresholds_are_documented() -> None:
    assert len(set(RULES)) == len(RULES)
    table = docs_table()
    assert "setup_tax_ms" in table and "Lighthouse" in table


def test_rules_hold_at_the_largest_run() -> None:
    # The documented maximum: 10 000 warm requests; rules stay linear-ish.
    warm = [rec(1.0 + (i % 7) * 0.01) for i in range(10_000)]
    cold = [rec(1.2, reused=False, series="cold") for _ in range(1000)]
    assert ids(ev(coldwarm=coldwarm(cold, warm))) == {}

"""``slow-app`` and ``many-queries``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, coldwarm, ev, ids, rec


def test_a_slow_view_is_slow_app_never_a_tax() -> None:
    cold = [rec(200.5, reused=False, series="cold", st=app(200.0)) for _ in range(10)]
    warm = [rec(200.2, st=app(200.0)) for _ in range(10)]
    assert ids(ev(coldwarm=coldwarm(cold, warm))) == {"slow-app": "warning"}


def test_many_queries_judged_by_repetition_not_cost() -> None:
    st = app(5.0, db=(1.0, "61 queries"), dbshapes=(0.9, "2 shapes, max 60 repeats"))
    cw = coldwarm([rec(6, reused=False, series="cold", st=st)] * 4, [rec(5.5, st=st)] * 4)
    found = {f.id: f for f in evaluate(ev(coldwarm=cw), T)}
    assert found["many-queries"].severity == "warning"
    few = app(5.0, db=(1.0, "12 queries"), dbshapes=(0.9, "12 shapes, max 1 repeat"))
    cw = coldwarm([rec(6, reused=False, series="cold", st=few)] * 4, [rec(5.5, st=few)] * 4)
    assert "many-queries" not in ids(ev(coldwarm=cw))

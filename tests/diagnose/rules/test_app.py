"""``slow-app`` and ``many-queries``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules import evaluate
from lagscope.diagnose.rules.app import DB_PHASE, OWN_PHASE, TPL_PHASE
from lagscope.instrument.servertiming import Metric
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


def _slow(st: tuple[Metric, ...]) -> Finding:
    cold = [rec(152.0, reused=False, series="cold", st=st) for _ in range(8)]
    warm = [rec(151.5, st=st) for _ in range(10)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"slow-app"}
    return found["slow-app"]


def test_a_slow_query_in_a_fast_view_names_the_database_as_the_phase() -> None:
    slow = _slow(app(151.0, view=(150.5, None), db=(150.0, "1 query")))
    assert Figure("phase", DB_PHASE) in slow.evidence
    assert "150 ms of it in the app's database queries" in slow.detail
    assert "EXPLAIN ANALYZE" in slow.fix[0]


def test_a_slow_view_with_quick_queries_names_its_own_code() -> None:
    slow = _slow(app(151.0, view=(150.5, None), db=(2.0, "3 queries")))
    assert Figure("phase", OWN_PHASE) in slow.evidence
    assert slow.fix[0].startswith("Profile the view")


def test_slow_template_rendering_is_named_as_the_phase() -> None:
    slow = _slow(app(151.0, view=(5.0, None), tpl=(145.0, None)))
    assert Figure("phase", TPL_PHASE) in slow.evidence

"""``db-connect-per-request`` and ``db-connect-slow``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, coldwarm, ev, ids, rec


def test_db_connect_per_request_from_the_apps_own_account() -> None:
    st = app(20.0, dbconn=(12.0, "1 connect"))
    cw = coldwarm([rec(21, reused=False, series="cold", st=st)] * 6, [rec(20.5, st=st)] * 6)
    found = {f.id: f for f in evaluate(ev(coldwarm=cw), T)}
    assert set(found) == {"db-connect-per-request"}
    assert found["db-connect-per-request"].cost_ms == 12.0


def test_a_slow_connect_already_counted_per_request_is_info() -> None:
    st = app(320.0, dbconn=(300.0, "1 connect"))
    cw = coldwarm([rec(321, reused=False, series="cold", st=st)] * 6, [rec(320.5, st=st)] * 6)
    assert ids(ev(coldwarm=cw)) == {"db-connect-per-request": "critical", "db-connect-slow": "info"}

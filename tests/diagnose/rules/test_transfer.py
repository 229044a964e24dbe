"""A sized body held on its way over loopback (inspection in proportion to its size),
against a small-write stall and a body the app still streams."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lagscope.diagnose.budget import budgets
from lagscope.diagnose.evidence import Hygiene
from lagscope.diagnose.model import Figure
from lagscope.diagnose.rules import evaluate
from lagscope.diagnose.rules.outside import TRANSFER_PHASE
from lagscope.probe.model import RequestRecord
from support.diagnose_evidence import T, app, coldwarm, ev, ids, rec

MB = 1_000_000


def _sized(r: RequestRecord, body: int, sized: bool = True) -> RequestRecord:
    headers = (("content-length", str(body)),) if sized else (("transfer-encoding", "chunked"),)
    return replace(r, body_bytes=body, response_headers=headers)


def _series(receive: float, body: int, sized: bool = True) -> tuple[list[RequestRecord], ...]:
    st = app(2.0)
    cold = [
        _sized(rec(receive + 3.0, reused=False, series="cold", receive=receive, st=st), body, sized)
        for _ in range(8)
    ]
    warm = [
        _sized(rec(receive + 2.5 + 0.1 * (i % 3), receive=receive + 0.1 * i, st=st), body, sized)
        for i in range(10)
    ]
    return cold, warm


def test_a_megabyte_held_115_ms_on_every_response_is_outside_the_app_in_the_transfer() -> None:
    cold, warm = _series(115.0, MB)
    hygiene = Hygiene((), "application/json", None, MB, 3_000, 114.0)
    evidence = ev(coldwarm=coldwarm(cold, warm), hygiene=hygiene)
    findings = {f.id: f for f in evaluate(evidence, T)}
    outside = findings["outside-app-every-request"]
    assert Figure("phase", TRANSFER_PHASE) in outside.evidence
    # 1 MB takes 5 ms at the slowest healthy loopback rate; the rest is held.
    assert outside.cost_ms == pytest.approx(110.5, abs=1.0)
    # The payload's own cost over loopback is small: said, not a warning of its own.
    assert findings["large-payload"].severity == "info"
    assert findings["uncompressed-text"].severity == "info"
    assert {i for i, s in ids(evidence).items() if s != "info"} == {"outside-app-every-request"}
    warm_budget = budgets(evidence, tuple(findings.values()))[0]
    assert warm_budget.get("outside the app") == pytest.approx(110.5, abs=1.0)
    assert warm_budget.get("unexplained") < 5.0


def test_the_same_body_at_loopback_speed_is_nothing() -> None:
    cold, warm = _series(3.0, MB)
    assert "outside-app-every-request" not in ids(ev(coldwarm=coldwarm(cold, warm)))


def test_a_streamed_body_without_a_size_may_be_the_app_still_making_it() -> None:
    cold, warm = _series(115.0, MB, sized=False)
    found = ids(ev(coldwarm=coldwarm(cold, warm)))
    assert "outside-app-every-request" not in found
    assert "unexplained-time" in found


def test_a_large_body_arriving_near_the_windows_timer_is_not_a_small_write_stall() -> None:
    cold, warm = _series(3.0, MB)
    b2b = [_sized(rec(205.0, receive=200.0 + i), MB) for i in range(8)]
    cw = replace(coldwarm(cold, warm), back_to_back=tuple(b2b))
    assert "small-write-stall" not in ids(ev(coldwarm=cw))


def test_a_small_body_stalled_by_delayed_ack_stays_a_stall() -> None:
    cold, warm = _series(0.1, 100)
    warm = [_sized(rec(45.0, receive=43.0 + 0.1 * i), 100) for i in range(10)]
    found = ids(ev(coldwarm=coldwarm(cold, warm)))
    assert "small-write-stall" in found
    assert "outside-app-every-request" not in found

"""``worker-warmup``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.evidence import (
    Warmup,
)
from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, coldwarm, ev, healthy_cw, ids, rec


def test_worker_warmup_seen_through_threads_and_connects() -> None:
    early = [
        rec(205.0, st=app(204.0, dbconn=(200.0, "1 connect"), thread=(None, f"w-{i}")))
        for i in range(4)
    ] + [rec(1.0, st=app(0.5, thread=(None, "w-0")))]
    steady = coldwarm(
        [rec(1.2, reused=False, series="cold", st=app(0.5))] * 8, [rec(1.0, st=app(0.5))] * 8
    )
    found = {f.id: f for f in evaluate(ev(coldwarm=steady, warmup=Warmup(tuple(early), ())), T)}
    assert set(found) == {"worker-warmup", "db-connect-slow"}
    assert found["worker-warmup"].cost_ms == pytest.approx(203.5)
    assert found["db-connect-slow"].severity == "info"


def test_one_slow_first_request_is_not_per_worker_warmup() -> None:
    early = [rec(40.0, reused=False)] + [rec(1.0) for _ in range(6)]
    assert "worker-warmup" not in ids(ev(coldwarm=healthy_cw(), warmup=Warmup(tuple(early), ())))

"""``worker-warmup``, from hand-built evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lagscope.diagnose.evidence import (
    Warmup,
)
from lagscope.diagnose.rules import evaluate
from lagscope.probe.model import RequestRecord
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


def test_a_worker_that_connects_again_later_was_not_warming_up() -> None:
    # CONN_MAX_AGE of a second: the first requests connect, and later ones on the same
    # threads connect again. The connects are slow; they are not warm-up.
    def connects(i: int) -> RequestRecord:
        return rec(205.0, st=app(204.0, dbconn=(200.0, "1 connect"), thread=(None, f"w-{i}")))

    early = [connects(i) for i in range(4)]
    quick = [rec(1.0, st=app(0.5, thread=(None, f"w-{i % 4}"))) for i in range(8)]
    steady = coldwarm(
        [replace(r, reused=False, series="cold", connect_ms=0.05) for r in quick],
        [*quick[:4], replace(connects(1), start_ms=50.0), *quick[4:]],
    )
    found = {f.id: f for f in evaluate(ev(coldwarm=steady, warmup=Warmup(tuple(early), ())), T)}
    assert set(found) == {"db-connect-slow"}
    slow = found["db-connect-slow"]
    assert slow.severity == "critical" and slow.affects == "every new database connection"
    assert "not kept" in slow.detail and slow.fix[0].startswith("Keep connections longer")


def test_first_requests_slow_only_in_the_clients_own_phases_are_not_warm_up() -> None:
    # Without Server-Timing: the first two took 40 ms, all of it before the request left
    # (an address that timed out, a loaded client), none in the server's time to first byte.
    early = [rec(40.0, reused=False, wait=0.25, series="sequence") for _ in range(2)]
    early += [rec(0.3, reused=False, series="sequence") for _ in range(6)]
    evidence = ev(coldwarm=healthy_cw(), warmup=Warmup(tuple(early), ()))
    assert "worker-warmup" not in ids(evidence)
    # The same 40 ms in the server's wait is warm-up.
    slow = [rec(40.0, reused=False, series="sequence") for _ in range(2)] + early[2:]
    assert "worker-warmup" in ids(ev(coldwarm=healthy_cw(), warmup=Warmup(tuple(slow), ())))

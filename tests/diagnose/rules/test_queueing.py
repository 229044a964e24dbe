"""``server-queueing``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.evidence import (
    QueueLevel,
)
from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, app, ev, ids, rec


def test_queueing_needs_waiting_that_the_apps_own_time_does_not_explain() -> None:
    def level(clients: int, outside: float, app_ms: float) -> QueueLevel:
        records = [rec(app_ms + outside, wait=app_ms + outside, st=app(app_ms))] * 4
        return QueueLevel(clients, tuple(records))

    queued = (level(1, 0.2, 100), level(2, 100.2, 100), level(4, 300.2, 100))
    found = {f.id: f for f in evaluate(ev(queue=queued), T)}
    assert found["server-queueing"].cost_ms == pytest.approx(100.0)
    # CPU contention: the app's own time grows with the wait, so no worker queue is blamed.
    contended = (level(1, 0.2, 14), level(2, 14, 28), level(4, 42, 56))
    assert "server-queueing" not in ids(ev(queue=contended))


@pytest.mark.parametrize(("threads", "queued"), [(1, True), (2, False)])
def test_a_wait_longer_than_the_named_workers_explain_is_a_starved_cpu(
    threads: int, queued: bool
) -> None:
    """Four clients, a 20 ms view, 50 ms waited at 4 clients: on one worker three requests
    can be ahead (up to 60 ms, a queue); on the two workers the app names at most one (20
    ms), so 50 ms is the machine's CPU starved, not a worker shortage."""

    def level(clients: int, outside: float) -> QueueLevel:
        records = [
            rec(20.0 + outside, wait=20.0 + outside, st=app(20.0, thread=(None, f"t{k % threads}")))
            for k in range(4)
        ]
        return QueueLevel(clients, tuple(records))

    levels = (level(1, 0.5), level(2, 10.5), level(4, 50.5))
    assert ("server-queueing" in ids(ev(queue=levels))) is queued

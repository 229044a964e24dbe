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

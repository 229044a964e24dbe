"""``small-write-stall``, from hand-built evidence."""

from __future__ import annotations

import pytest

from lagscope.diagnose.rules import evaluate
from support.diagnose_evidence import T, coldwarm, ev, rec


def test_small_write_stall_clusters_at_the_delayed_ack_timer() -> None:
    cold = [rec(1.0, reused=False, series="cold", receive=0.05) for _ in range(8)]
    warm = [rec(41.0, receive=40.2 + 0.1 * i) for i in range(8)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"small-write-stall"}
    # End to end: a stalled exchange (41 ms) against one that did not stall (a reused
    # connection's wait, a new connection's send and receive: 0.5 ms).
    assert found["small-write-stall"].cost_ms == pytest.approx(40.5, abs=0.2)

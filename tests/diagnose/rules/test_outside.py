"""``outside-app-every-request`` and ``unexplained-time``, from hand-built evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lagscope.diagnose.evidence import SetupSplit
from lagscope.diagnose.rules import evaluate
from lagscope.probe.model import RequestRecord
from support.diagnose_evidence import T, app, coldwarm, ev, ids, rec


def test_time_outside_the_app_on_reused_connections_is_named_with_its_cost() -> None:
    st = app(0.3)
    cold = [rec(81.5, reused=False, series="cold", st=st) for _ in range(8)]
    warm = [rec(81.0, wait=80.9, st=st) for _ in range(8)]
    found = {f.id: f for f in evaluate(ev(coldwarm=coldwarm(cold, warm)), T)}
    assert set(found) == {"outside-app-every-request"}
    assert found["outside-app-every-request"].cost_ms == pytest.approx(80.6)
    assert "--direct" in found["outside-app-every-request"].confirm


def _missing_page(wait: float, status: int = 404) -> tuple[RequestRecord, ...]:
    return tuple(
        replace(rec(wait + 0.1, reused=i > 0, wait=wait, series="cheap"), status=status)
        for i in range(7)
    )


def test_without_server_timing_a_missing_page_tells_outside_time_from_the_page() -> None:
    cold = [rec(81.5, reused=False, series="cold") for _ in range(8)]
    warm = [rec(81.0, wait=80.9) for _ in range(8)]
    cw = coldwarm(cold, warm)
    slow_404 = SetupSplit(0.0, (), "/missing", (), _missing_page(80.5))
    assert ids(ev(coldwarm=cw, setup_split=slow_404)) == {"outside-app-every-request": "warning"}
    fast_404 = SetupSplit(0.0, (), "/missing", (), _missing_page(0.4))
    assert ids(ev(coldwarm=cw, setup_split=fast_404)) == {}
    # An app that answers every path alike proves nothing either way.
    same = SetupSplit(0.0, (), "/missing", (), _missing_page(80.5, status=200))
    assert ids(ev(coldwarm=cw, setup_split=same)) == {}


def test_a_tax_absorbed_by_idle_time_on_a_closing_server_is_a_setup_tax() -> None:
    records = [rec(61.0, reused=False, series="cold", wait=60.9) for _ in range(8)]
    cw = coldwarm(records, records, keep=False)
    idle = tuple(rec(1.0, reused=False, wait=0.9, series="idle_first") for _ in range(6))
    found = {
        f.id: f for f in evaluate(ev(coldwarm=cw, setup_split=SetupSplit(90.0, idle, "/m", ())), T)
    }
    assert set(found) == {"connection-setup-tax", "keepalive-refused"}
    assert found["connection-setup-tax"].cost_ms == pytest.approx(60.0)
    assert found["connection-setup-tax"].affects == "every request"
    # Nothing separates it: the whole wait is named, with the phase it was measured in.
    unsplit = SetupSplit(90.0, tuple(records[:6]), "/m", ())
    found = {f.id: f for f in evaluate(ev(coldwarm=cw, setup_split=unsplit), T)}
    assert found["unexplained-time"].cost_ms == pytest.approx(60.9)
    assert "before the first byte" in found["unexplained-time"].title

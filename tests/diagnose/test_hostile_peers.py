"""diagnose and probe against hostile servers on loopback, one test per failure class: any
Server-Timing value that cannot be true, any malformed redirect, any keep-alive connection a
server drops without saying so. Each run must end with figures that are finite and
consistent (no exit 70, no negative "unexplained"), and say what it left out."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from lagscope.diagnose import run
from lagscope.diagnose.model import DiagnoseReport
from lagscope.diagnose.model import to_dict as diagnose_to_dict
from lagscope.probe.model import to_dict as probe_to_dict
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.render import load_json as load_probe_json
from lagscope.probe.runner import run_probe
from support import badservers


def _numbers(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [n for v in node.values() for n in _numbers(v)]
    if isinstance(node, list):
        return [n for v in node for n in _numbers(v)]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [float(node)]
    return []


# Durations no response can carry: overflowing, negative, or longer than a loopback
# exchange of well under a second.
IMPOSSIBLE_DURS = [b"1e308", b"1.7976931348623157e308", b"-5", b"-1e308", b"-0.001", b"86400000"]


def _quick(url: str) -> DiagnoseReport:
    return run(url, quick=True, timeout_s=5.0, max_time_s=30.0)


@pytest.mark.parametrize("dur", IMPOSSIBLE_DURS)
def test_impossible_server_timing_is_dropped_with_a_note(dur: bytes) -> None:
    header = b"app;dur=" + dur + b", db;dur=" + dur + b", thread;desc=w1, view;dur=0"
    with badservers.serve(badservers.answers([(b"Server-Timing", header)])) as port:
        url = f"http://127.0.0.1:{port}/"
        report = _quick(url)
        probe = run_probe(ProbeOptions(target=parse_url(url), cold=3, warm=3))
    for warnings, records in (
        (report.warnings, report.requests),
        (probe.warnings, [r for s in probe.series for r in s.requests]),
    ):
        assert any("dropped as impossible" in w for w in warnings), warnings
        for r in records:
            names = [m.name for m in r.server_timing]
            assert "app" not in names and "db" not in names  # gone from every figure
            assert {"thread", "view"} <= set(names)  # the believable ones stay
            assert {m.name for m in r.dropped_server_timing} == {"app", "db"}
    for b in report.budgets:
        assert all(0.0 <= i.ms <= b.total_ms + 1e-9 for i in b.items if i.within is None), b
    for data in (diagnose_to_dict(report), probe_to_dict(probe)):
        # The saved form holds what was dropped and reloads (every number in range).
        assert all(math.isfinite(n) for n in _numbers(data))
    assert load_probe_json(json.dumps(probe_to_dict(probe))).warnings == probe.warnings


def test_server_timing_longer_than_the_request_never_makes_unexplained_negative() -> None:
    """An app figure just inside the exchange, and one over it: the budget's top-level items
    are each within the total and add up to it."""
    header = b"app;dur=0.0001, queue;dur=0.0001, total;dur=50"
    with badservers.serve(badservers.answers([(b"Server-Timing", header)])) as port:
        report = _quick(f"http://127.0.0.1:{port}/")
    assert report.budgets
    for b in report.budgets:
        top = [i for i in b.items if i.within is None]
        assert all(i.ms >= 0 for i in top), top
        assert math.isclose(sum(i.ms for i in top), b.total_ms, abs_tol=1e-6) or b.kind == "cold"

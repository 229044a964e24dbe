"""Chart layout and the view: pure functions, no browser, no sockets."""

from __future__ import annotations

import json
import math
import time

import pytest

from lagscope.instrument.profile import ProfileFrame
from lagscope.instrument.servertiming import Metric
from lagscope.probe.model import (
    KeepAlive,
    RequestRecord,
)
from lagscope.probe.report import RunFacts, build_report
from lagscope.report import charts, har, html


def _record(
    i: int, series: str, conn: int, reused: bool, total: float, thread: str
) -> RequestRecord:
    opening = 0.0 if reused else 0.5
    return RequestRecord(
        series=series,
        index=i,
        connection=conn,
        reused=reused,
        status=200,
        http_version="1.1",
        start_ms=i * 10.0,
        resolve_ms=None if reused else 0.1,
        connect_ms=None if reused else 0.4,
        tls_ms=None,
        send_ms=0.05,
        wait_ms=total - opening - 0.1,
        receive_ms=0.05,
        total_ms=total,
        body_bytes=10,
        keep_alive=True,
        server_timing=(Metric("total", total / 2, None), Metric("thread", None, thread)),
    )


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert charts.nice_ticks(97) == [0, 20, 40, 60, 80, 100]
    assert charts.nice_ticks(0.3) == [0, 0.1, 0.2, 0.3]
    assert charts.nice_ticks(100, lo=-3) == [-25, 0, 25, 50, 75, 100]
    for bad in (0.0, -1.0, math.nan, math.inf):
        assert charts.nice_ticks(bad) == [0.0, 1.0]


def test_waterfall_places_each_request_at_its_start_and_phases_end_to_end() -> None:
    recs = [("c0", _record(i, "warm", 0, i > 0, 5.0, "t0")) for i in range(5)]
    wf = charts.waterfall(list(reversed(recs)), limit=3)
    assert wf.shown == 3 and wf.total == 5
    assert [r.label for r in wf.rows] == ["warm 1", "warm 2", "warm 3"]
    first, second = wf.rows[0], wf.rows[1]
    assert [s.name for s in first.segments] == ["resolve", "connect", "send", "wait", "receive"]
    assert [s.name for s in second.segments] == ["send", "wait", "receive"]
    for row in wf.rows:
        for a, b in zip(row.segments, row.segments[1:], strict=False):
            assert b.x == pytest.approx(a.x + a.w)
    px = first.segments[-1].w / 0.05
    assert second.segments[0].x == pytest.approx(10.0 * px)


def test_sequence_colours_by_worker_and_shapes_by_connection() -> None:
    recs = [(f"c{i}", _record(i, "cold", i, False, 100.0, f"w-{i % 3}")) for i in range(3)]
    recs += [("c9", _record(3 + i, "warm", 9, True, 5.0, f"w-{i % 3}")) for i in range(6)]
    seq = charts.sequence(recs)
    assert seq.workers == ("w-0", "w-1", "w-2")
    assert [p.worker_class for p in seq.points] == [0, 1, 2] * 3
    assert [p.reused for p in seq.points] == [False] * 3 + [True] * 6
    # Higher latency is higher on the page (smaller y).
    assert seq.points[0].y < seq.points[5].y


def test_ecdf_median_and_interval_positions() -> None:
    from lagscope.probe.stats import summarize

    values = [float(v) for v in range(1, 101)]
    s = summarize(values)
    e = charts.ecdf([("warm", values, s)], width=500.0)
    (line,) = e.series
    top = charts.nice_ticks(100.0)[-1]
    assert line.median_x == pytest.approx(s.p50_ms * 500.0 / top)
    assert line.ci_x == pytest.approx(s.ci_low_ms * 500.0 / top)
    assert line.path.startswith("M0,") and line.path.count("V") == 100


def test_cost_chart_zero_sits_between_negative_and_positive() -> None:
    c = charts.cost_chart([("a", -2.0, -3.0, -1.0, True), ("b", 50.0, 40.0, 60.0, True)])
    neg, pos = c.bars
    assert neg.x + neg.w == pytest.approx(c.zero_x)
    assert pos.x == pytest.approx(c.zero_x)
    assert neg.whisker_x1 is not None and neg.whisker_x1 < neg.x + 0.001


def _facts() -> RunFacts:
    return RunFacts(
        tool_version="0",
        url="http://127.0.0.1:1/",
        method="GET",
        started_at="2026-01-01T00:00:00+00:00",
        duration_ms=1.0,
        host="127.0.0.1",
        resolve_source="dns",
        addresses=("127.0.0.1",),
        keep_alive=KeepAlive(supported=True, reason=None, reconnects=0),
        truncated=False,
        warnings=(),
        options=(),
    )


def test_the_largest_run_renders_in_bounded_time_and_size() -> None:
    # probe's documented maximum: 1000 cold and 10000 warm requests.
    recs = [_record(i, "cold", i, False, 100.0 + i % 7, f"w{i % 4}") for i in range(1000)]
    recs += [_record(1000 + i, "warm", 5000, True, 5.0 + i % 3, f"w{i % 4}") for i in range(10000)]
    report = build_report(recs, _facts())
    t0 = time.perf_counter()
    page = html.render(report)
    elapsed = time.perf_counter() - t0
    assert elapsed < 30
    # The sequence plot stops at SEQUENCE_LIMIT points and says so.
    assert page.count("<circle") + page.count('class="pt new-conn') == html.SEQUENCE_LIMIT
    assert f"(the first {html.SEQUENCE_LIMIT})" in page
    assert len(page.encode()) < 2_000_000


def test_a_default_sized_run_is_well_under_a_megabyte() -> None:
    recs = [_record(i, "cold", i, False, 100.0, f"w{i % 4}") for i in range(20)]
    recs += [_record(20 + i, "warm", 99, True, 5.0, f"w{i % 4}") for i in range(51)]
    page = html.render(build_report(recs, _facts()))
    assert len(page.encode()) < 300_000


@pytest.mark.parametrize(
    "records",
    [
        [],
        [_record(0, "cold", 0, False, 5.0, "t")],
        [_record(0, "warm_first", 0, False, 5.0, "t")]
        + [_record(i, "warm", 0, True, 0.0, "t") for i in range(1, 4)],
        [_record(i, "cold", i, False, 0.0, "t") for i in range(3)],
    ],
    ids=["no-request", "one-cold", "warm-only-zero", "all-zero"],
)
def test_degenerate_runs_still_render(records: list[RequestRecord]) -> None:
    report = build_report(records, _facts())
    page = html.render(report)
    assert page.rstrip().endswith("</html>")
    if not records:
        assert "No request completed." in page
    assert len(json.loads(har.render(report))["log"]["entries"]) == len(records)


def test_backticked_spans_become_code_and_everything_else_is_escaped() -> None:
    from lagscope.report.html import _code_spans

    out = str(_code_spans("run `lagscope serve` then <b>`a<b>`</b> & ` lone"))
    assert out == (
        "run <code>lagscope serve</code> then &lt;b&gt;<code>a&lt;b&gt;</code>&lt;/b&gt; "
        "&amp; ` lone"
    )


def test_icicle_lays_callees_under_callers_within_their_span() -> None:
    frames = (
        ProfileFrame("inner", "django/x.py", 1, False, 200.0, 0.0, -1),
        ProfileFrame("view", "app/views.py", 9, True, 160.0, 10.0, 0),
        ProfileFrame("slow_helper", "app/views.py", 3, True, 150.0, 0.0, 1),
        ProfileFrame("sleep", "<built-in>", 0, False, 150.0, 150.0, 2),
        ProfileFrame("render", "django/t.py", 5, False, 40.0, 40.0, 0),
        ProfileFrame("tiny", "app/views.py", 5, True, 0.1, 0.1, 0),
    )
    chart = charts.icicle(frames, width=400.0, row_h=10.0)
    cells = {c.title.split(" (")[0]: c for c in chart.cells}
    assert set(cells) == {"inner", "view", "slow_helper", "sleep", "render"}  # tiny < 1 px
    assert cells["inner"].w == pytest.approx(400.0) and cells["inner"].y == 0.0
    assert cells["view"].x == 0.0 and cells["view"].w == pytest.approx(320.0)
    assert cells["render"].x == pytest.approx(320.0) and cells["render"].y == 10.0
    assert cells["sleep"].y == 30.0 and chart.height == 40.0
    assert cells["slow_helper"].app and not cells["sleep"].app
    assert cells["slow_helper"].title == "slow_helper (app/views.py:3): 150.00 ms, 75%"
    # Labels are cut to their box.
    narrow = charts.icicle(
        (ProfileFrame("a_rather_long_function_name", "f.py", 1, True, 1.0, 1.0),), 60.0
    )
    assert narrow.cells[0].label == "a_rather…"


def test_browser_waterfall_one_row_per_request_with_connection_and_phases() -> None:
    from lagscope.browser.model import PageLoad, ResourceLoad
    from lagscope.report.charts import browser_waterfall

    def res(
        path: str, start: float, conn: int | None, reused: bool, cached: bool = False
    ) -> ResourceLoad:
        return ResourceLoad(
            url=f"http://h{path}",
            kind="link",
            start_ms=start,
            end_ms=start + 310.0,
            queued_ms=2.0,
            dns_ms=None,
            connect_ms=None if reused else 5.0,
            tls_ms=None,
            wait_ms=300.0,
            receive_ms=3.0,
            protocol="http/1.1",
            status=200,
            transfer_bytes=0 if cached else 300,
            from_cache=cached,
            connection_id=conn,
            reused=reused,
        )

    load = PageLoad(
        "cold",
        "http://h/",
        700.0,
        690.0,
        (
            res("/", 0.0, 7, False),
            res("/a.css", 320.0, 7, True),
            res("/b.css", 320.0, 9, False),
            res("/c.css", 330.0, None, False, cached=True),
        ),
    )
    wf = browser_waterfall(load)
    assert [r.label for r in wf.rows] == ["/", "/a.css", "/b.css", "/c.css"]
    assert [(r.connection, r.reused) for r in wf.rows] == [
        ("c7", False),
        ("c7", True),
        ("c9", False),
        ("cache", True),
    ]
    assert [s.name for s in wf.rows[2].segments] == ["queued", "connect", "wait", "receive"]
    assert [s.name for s in wf.rows[1].segments] == ["queued", "wait", "receive"]
    assert wf.rows[3].segments == ()
    # Rows start where their request started, on one scale that covers the load.
    assert wf.rows[1].segments[0].x > wf.rows[0].segments[0].x
    assert float(wf.ticks[-1].label) >= load.load_ms

"""The waitress server lagscope serve runs (:mod:`lagscope.serve.server`): waitress's
"Task queue depth" warning summarised, with a made-up clock and for real under queueing."""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from lagscope.serve import AppSpec, Host, LoadedApp, resolve, start_waitress
from lagscope.serve.server import QUEUE_LOGGER, QueueDepthSummary


def _queue_record(depth: int) -> logging.LogRecord:
    return logging.LogRecord(
        QUEUE_LOGGER, logging.WARNING, __file__, 1, "Task queue depth is %d", (depth,), None
    )


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_one_line_per_window_with_the_deepest_queue_and_the_count() -> None:
    clock = _Clock()
    summary = QueueDepthSummary(window_s=5.0, clock=clock)
    first = _queue_record(1)
    assert summary.filter(first)  # queueing started: said at once
    assert "Task queue depth is 1" in first.getMessage()
    passed = []
    for depth in (2, 7, 3, 1):
        clock.now_s += 1.0
        passed.append(summary.filter(_queue_record(depth)))
    assert passed == [False, False, False, False]
    clock.now_s += 1.5  # 5.5 s after the first line
    later = _queue_record(2)
    assert summary.filter(later)
    assert later.getMessage() == (
        "Task queue depth up to 7: 5 requests waited for a free thread since the last such line"
    )
    clock.now_s += 1.0  # a new window starts at the line just logged
    assert not summary.filter(_queue_record(4))


def test_other_messages_on_the_logger_pass_untouched() -> None:
    summary = QueueDepthSummary(window_s=5.0, clock=_Clock())
    other = logging.LogRecord(QUEUE_LOGGER, logging.WARNING, __file__, 1, "other %s", ("x",), None)
    assert summary.filter(_queue_record(1))
    assert summary.filter(other) and other.getMessage() == "other x"


def test_flush_logs_what_was_counted_after_the_last_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    summary = QueueDepthSummary(window_s=5.0, clock=clock)
    logger = logging.getLogger("lagscope.test.queue.flush")
    logger.addFilter(summary)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            summary.flush(logger)
            assert caplog.messages == []
            for depth in (1, 3, 2):
                logger.warning("Task queue depth is %d", depth)
            summary.flush(logger)  # passes the filter it flushes
    finally:
        logger.removeFilter(summary)
    assert caplog.messages == [
        "Task queue depth is 1: a request waits for a free thread "
        "(further queueing summarised every 5 s at most)",
        "Task queue depth up to 3: 2 requests waited for a free thread since the last such line",
    ]


def _slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    time.sleep(0.2)
    body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_real_waitress_queueing_logs_a_bounded_number_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One thread, 8 concurrent 200 ms requests: 7 of them wait for the thread, and
    # waitress alone would log a "Task queue depth" line for each.
    config = resolve({"host": "127.0.0.1", "port": 0, "threads": 1}, Host.current())
    ws = start_waitress(LoadedApp(_slow, AppSpec("wsgi", "test:slow")), config)
    loop = threading.Thread(target=ws.serve, daemon=True)
    statuses: list[int] = []

    def get() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ws.port, timeout=30)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        finally:
            conn.close()

    with caplog.at_level(logging.WARNING, logger=QUEUE_LOGGER):
        loop.start()
        clients = [threading.Thread(target=get) for _ in range(8)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(30)
        ws.stop()
        assert ws.wait_stopped(30)
        loop.join(30)
    assert statuses == [200] * 8
    lines = [r.getMessage() for r in caplog.records if r.name == QUEUE_LOGGER]
    # The first queued request says so at once; the rest (within 5 s) come out as one
    # summary when the server stops.
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("Task queue depth is ")
    counted = 1 + sum(
        int(line.split(": ")[1].split(" ")[0]) for line in lines[1:] if "up to" in line
    )
    assert counted >= 4, lines  # queueing did happen, several times
    # The filter is gone with the server: waitress's own lines pass again.
    assert not logging.getLogger(QUEUE_LOGGER).filters

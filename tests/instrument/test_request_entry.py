"""Request entry shared by both middlewares, and the header they build from any input."""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.instrument import ConnectionTracker, Disclosure, RequestTiming, build_header
from lagscope.instrument.options import options_from_mapping
from lagscope.instrument.request_entry import FailureLog, begin_request, environ_key
from lagscope.instrument.servertiming import parse, unescape_text

_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_VALUE = rf'(?:{_TCHAR}+|"(?:[\t !#-\[\]-~]|\\[\t -~])*")'
_METRIC = rf"{_TCHAR}+(?:;{_TCHAR}+={_VALUE})*"
_HEADER = re.compile(rf"{_METRIC}(?:, {_METRIC})*")

_floats = st.floats(allow_nan=True, allow_infinity=True)


@given(
    thread=st.text(),
    queue=st.none() | _floats,
    db_s=_floats,
    end_s=_floats,
    first=st.none() | st.booleans(),
)
def test_any_thread_name_and_value_give_a_valid_ascii_header(
    thread: str, queue: float | None, db_s: float, end_s: float, first: bool | None
) -> None:
    timing = RequestTiming(0.0)
    timing.thread = thread
    timing.queue_ms = queue
    timing.first_on_connection = first
    timing.add_query(db_s, 0.0, 7)
    timing.add_connect(db_s, 0.0)
    timing.end_s = end_s
    header = build_header(timing, Disclosure.FULL)
    assert header is not None
    # What waitress can encode and Django sends as is: ASCII, in the grammar.
    assert header.isascii() and _HEADER.fullmatch(header), header
    desc = {m.name: m for m in parse(header)}["thread"].desc
    assert desc is not None and unescape_text(desc) == thread


def _environ(**extra: object) -> dict[str, object]:
    return {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", **extra}


def _begin(
    environ: dict[str, object], **options: object
) -> tuple[RequestTiming, Disclosure] | None:
    return begin_request(
        environ,
        options_from_mapping(options),
        ConnectionTracker(),
        start_s=5.0,
        thread="worker-1",
        wall_clock=lambda: 1_764_000_000.5,
        debug=False,
        internal_ips=None,
    )


def test_entry_fills_the_record_for_a_trusted_client() -> None:
    started = _begin(_environ(HTTP_X_REQUEST_START="t=1764000000.300"))
    assert started is not None
    timing, level = started
    assert level is Disclosure.FULL
    assert (timing.start_s, timing.thread, timing.first_on_connection) == (5.0, "worker-1", True)
    assert timing.queue_ms == pytest.approx(200, abs=1)


def test_entry_refuses_or_limits_untrusted_clients() -> None:
    assert _begin(_environ(REMOTE_ADDR="203.0.113.9")) is None
    started = _begin(_environ(REMOTE_ADDR="203.0.113.9"), UNTRUSTED="total")
    assert started is not None and started[1] is Disclosure.TOTAL
    secret = _environ(REMOTE_ADDR="203.0.113.9", HTTP_X_LAGSCOPE_TOKEN="k")
    started = _begin(secret, SECRET="k")
    assert started is not None and started[1] is Disclosure.FULL


def test_environ_key_and_failure_log(caplog: pytest.LogCaptureFixture) -> None:
    assert environ_key("X-Request-Start") == "HTTP_X_REQUEST_START"
    log = FailureLog()
    with caplog.at_level(logging.DEBUG, logger="lagscope"):
        for _ in range(3):
            try:
                raise RuntimeError("x")
            except RuntimeError:
                log("adding the header")
    assert log.count == 3
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]

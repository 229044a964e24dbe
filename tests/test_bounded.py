"""call_within: a blocking call bounded by a thread of its own."""

from __future__ import annotations

import threading
import time

import pytest

from lagscope.bounded import call_within


def test_the_result_and_the_exception_come_back() -> None:
    assert call_within(5.0, lambda: 42) == 42
    empty: dict[str, int] = {}
    with pytest.raises(KeyError, match="x"):
        call_within(5.0, lambda: empty["x"])


def test_a_call_that_never_returns_is_abandoned_at_the_deadline() -> None:
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"the connect: no answer within 0\.2 s"):
        call_within(0.2, lambda: release.wait(60), "the connect")
    assert time.monotonic() - start < 5.0  # not the 60 s the call would take
    release.set()  # let the abandoned thread end

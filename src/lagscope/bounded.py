"""A blocking call that cannot be given a deadline, bounded anyway: it runs in a daemon
thread of its own, and the caller stops waiting at the deadline.

For database connects: libpq's ``connect_timeout`` bounds one attempt, and one connect may
make several (each host and address, SSL then plain text with ``sslmode=prefer``), while
0 or nothing means "wait forever". A call that misses its deadline is abandoned to its own
timeout; what it returns late is dropped. Use it only for calls whose result is owned by
the caller alone (a new connection), never for shared state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["call_within"]

T = TypeVar("T")


def call_within(limit_s: float, fn: Callable[[], T], what: str = "the call") -> T:
    """``fn()``, or ``TimeoutError`` once ``limit_s`` seconds have passed; what ``fn``
    raises is raised here."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller below
            box.append((False, exc))

    worker = threading.Thread(target=run, name=f"lagscope-bounded {what}", daemon=True)
    worker.start()
    worker.join(max(0.0, limit_s))
    if not box:
        raise TimeoutError(f"{what}: no answer within {limit_s:g} s")
    ok, value = box[0]
    if ok:
        result: T = value
        return result
    raise value

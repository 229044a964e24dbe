"""Spread ``serve --workers`` connections evenly: a worker accepts only while it holds no
more open connections than the least-loaded live worker.

Why: the workers share one listening socket, and a new connection goes to whichever
worker's ``select()`` wakes first. Measured on 2 vCPUs with ``hey -c 8``: the 8 keep-alive
connections split 6/2, 7/1 and 8/0 over two workers, and since the GIL caps a worker at one
core, an 8/0 split serves what one worker serves. ``SO_REUSEPORT`` would be Linux-only
(and hashes 4-tuples, which is uneven for a handful of connections); this works on every
OS.

How: :class:`LoadTable` holds, per worker index, the worker's open-connection count and the
time of its last loop iteration (``multiprocessing`` shared memory: inherited on fork,
passed to a spawned worker with its arguments on Windows). Each worker's listening
dispatcher publishes its own slot every loop iteration and asks :func:`may_accept`. The
least-loaded live worker always accepts, so someone always does. A worker that is not
accepting does not watch the listeners, so it must look again soon: its loop waits at most
:data:`RECHECK_S` instead of the usual second (:attr:`Balance.accepting`). A slot that is
absent (worker not started yet, stopping, dead) or whose heartbeat is older than
:data:`STALE_S` (a hung loop) does not count, so no worker waits for one that cannot accept.

The rule and the table are pure Python with no sockets; the waitress side is
:mod:`lagscope.serve.accept`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ABSENT", "RECHECK_S", "STALE_S", "Balance", "LoadTable", "may_accept"]

# A slot's count while its worker is not serving (not started, stopping, dead).
ABSENT = -1
# How often a worker that is not accepting looks again (the loop's select timeout then).
# Only the race in which every worker just stopped accepting at once waits this long.
RECHECK_S = 0.005
# A heartbeat this old means the worker's loop is not running: it cannot accept, so its
# count must not hold the others back. The loop wakes at least once a second.
STALE_S = 3.0


def may_accept(
    me: int,
    mine: int,
    counts: Sequence[int],
    beats_s: Sequence[float],
    now_s: float,
    stale_s: float = STALE_S,
) -> bool:
    """Whether worker ``me``, holding ``mine`` connections, should accept now: it holds no
    more than any other live worker (ties accept). ``counts[i]`` / ``beats_s[i]`` are
    worker i's published count and heartbeat; absent and stale slots are ignored."""
    for index, (count, beat_s) in enumerate(zip(counts, beats_s, strict=True)):
        if index == me or count == ABSENT or now_s - beat_s > stale_s:
            continue
        if count < mine:
            return False
    return True


class LoadTable:
    """One slot per worker index in memory shared by every worker process.

    ``context`` is a ``multiprocessing`` context (its ``RawArray``); a slot has a single
    writer (its worker, or the parent while the worker is not running), so no lock."""

    def __init__(self, workers: int, context: Any) -> None:
        self.counts: Any = context.RawArray("i", [ABSENT] * workers)
        self.beats_s: Any = context.RawArray("d", workers)

    def __len__(self) -> int:
        return len(self.counts)

    def clear(self, index: int) -> None:
        """Slot ``index`` stops counting (its worker is not serving)."""
        self.counts[index] = ABSENT

    def snapshot(self) -> tuple[list[int], list[float]]:
        return list(self.counts), list(self.beats_s)


class Balance:
    """One worker's side of the table: publish its count, decide whether to accept."""

    def __init__(
        self,
        table: LoadTable,
        index: int,
        clock: Callable[[], float] = time.monotonic,
        stale_s: float = STALE_S,
    ) -> None:
        self.table = table
        self.index = index
        self.clock = clock
        self.stale_s = stale_s
        self.accepting = True

    def decide(self, connections: int) -> bool:
        """Publish ``connections`` and a heartbeat; return (and remember) whether to accept."""
        now_s = self.clock()
        self.table.counts[self.index] = connections
        self.table.beats_s[self.index] = now_s
        counts, beats_s = self.table.snapshot()
        self.accepting = may_accept(self.index, connections, counts, beats_s, now_s, self.stale_s)
        return self.accepting

    def join(self) -> None:
        """This worker is about to serve: count it (holding nothing) from now on, so the
        others leave it its share of the first connections even if its loop starts a
        little after theirs."""
        self.decide(0)

    def leave(self) -> None:
        """This worker stops accepting for good (a stop began): the others stop waiting
        for it."""
        self.accepting = True  # nothing to recheck any more
        self.table.clear(self.index)

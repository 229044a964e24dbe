"""Fault plans: what the proxy does to each connection, decided without sockets or clocks.

This module owns routes, the resolution of a route's faults into one
:class:`ConnectionPlan` per accepted connection, and the arithmetic that turns "a chunk was
read at t" into "forward it at t'". The fault classes themselves live in
``lagscope.inject.faults`` (re-exported here), as does :class:`FlowPlan`, which the faults
change while a plan is resolved. The pump (``lagscope.inject.pump``) only
executes what these functions return.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from lagscope.inject.faults import (
    ALL,
    PASSTHROUGH,
    Bandwidth,
    BlackHole,
    ConnectionDraft,
    ConnectionTax,
    DialDelay,
    Direction,
    Fault,
    FirstChunkDelay,
    Flow,
    FlowPlan,
    Latency,
    Reset,
    Select,
    SlowClose,
    selects,
)

__all__ = [
    "ALL",
    "Bandwidth",
    "BlackHole",
    "ConnectionPlan",
    "ConnectionTax",
    "DialDelay",
    "Direction",
    "Fault",
    "FirstChunkDelay",
    "Flow",
    "FlowPlan",
    "Latency",
    "Reset",
    "Route",
    "Select",
    "SlowClose",
    "chunk_release_s",
    "jitter_rng",
    "paced_start_s",
    "plan_connection",
    "selected_indices",
    "selects",
]


def selected_indices(select: Select, count: int) -> list[int]:
    """The indices among the first ``count`` connections that ``select`` picks."""
    return [i for i in range(count) if selects(select, i)]


@dataclass(frozen=True)
class Route:
    """One listening address forwarded to one upstream, with its faults.

    ``listen`` may use port 0; the bound port is reported by the proxy. A non-loopback
    ``listen`` host is refused unless ``allow_non_loopback`` is set.
    """

    listen: tuple[str, int]
    upstream: tuple[str, int]
    faults: Sequence[Fault] = ()
    name: str = ""
    allow_non_loopback: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(self.faults))
        object.__setattr__(self, "listen", (str(self.listen[0]), int(self.listen[1])))
        object.__setattr__(self, "upstream", (str(self.upstream[0]), int(self.upstream[1])))


@dataclass(frozen=True)
class ConnectionPlan:
    index: int
    tax_ms: float = 0.0
    dial_delay_ms: float = 0.0
    reset_at_connect: bool = False
    c2u: FlowPlan = PASSTHROUGH
    u2c: FlowPlan = PASSTHROUGH
    jitter_seed: int = 0
    applied: tuple[str, ...] = field(default=())

    def flow(self, flow: Flow) -> FlowPlan:
        return self.c2u if flow == "c2u" else self.u2c

    @property
    def black_hole(self) -> bool:
        """Both directions dropped: no upstream is needed."""
        return self.c2u.black_hole and self.u2c.black_hole


def plan_connection(faults: Sequence[Fault], index: int) -> ConnectionPlan:
    """Resolve a route's faults for the connection with accept ``index``.

    Several faults of one kind combine: delays add, the lowest bandwidth and the earliest
    reset win (each fault class's ``plan`` says how it combines).
    """
    draft = ConnectionDraft()
    applied: list[str] = []
    for fault in faults:
        if selects(fault.select, index):
            applied.append(type(fault).__name__)
            fault.plan(draft)
    return ConnectionPlan(
        index=index,
        tax_ms=draft.tax_ms,
        dial_delay_ms=draft.dial_delay_ms,
        reset_at_connect=draft.reset_at_connect,
        c2u=draft.flows["c2u"],
        u2c=draft.flows["u2c"],
        jitter_seed=draft.jitter_seed,
        applied=tuple(applied),
    )


def jitter_rng(seed: int, index: int, flow: Flow) -> random.Random:
    """The jitter source for one direction of one connection (reproducible per seed)."""
    return random.Random(f"lagscope-jitter:{seed}:{index}:{flow}")


def chunk_release_s(read_at_s: float, plan: FlowPlan, draw: float, prev_release_s: float) -> float:
    """When a chunk read at ``read_at_s`` may be forwarded under per-chunk latency.

    ``draw`` is a uniform number in [0, 1) for the jitter. The delay counts from the read,
    so delays never accumulate; the result is never earlier than the previous chunk's
    release, because a byte stream cannot be reordered.
    """
    delay_ms = max(0.0, plan.latency_ms + plan.jitter_ms * (2.0 * draw - 1.0))
    return max(read_at_s + delay_ms / 1000.0, prev_release_s)


def paced_start_s(
    ready_s: float, nbytes: int, bytes_per_s: int, link_free_s: float
) -> tuple[float, float]:
    """Bandwidth pacing: when to send ``nbytes`` that are ready at ``ready_s``.

    Returns (start, link free again); the link is busy for nbytes / bytes_per_s after start.
    """
    start = max(ready_s, link_free_s)
    return start, start + nbytes / bytes_per_s

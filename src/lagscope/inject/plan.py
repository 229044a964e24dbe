"""Fault plans: what the proxy does to each connection, decided without sockets or clocks.

This module owns the fault vocabulary (frozen dataclasses), the selection rule that picks
which connections a fault applies to (first N, every k-th, seeded probability), the
resolution of a route's faults into one :class:`ConnectionPlan` per accepted connection,
and the arithmetic that turns "a chunk was read at t" into "forward it at t'". The proxy
pump (``lagscope.inject.proxy``) only executes what these functions return.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

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

# One direction of a connection: client -> upstream, or upstream -> client.
Flow = Literal["c2u", "u2c"]
FLOWS: tuple[Flow, Flow] = ("c2u", "u2c")


class Direction(str, enum.Enum):
    """Which flows of a connection a fault applies to."""

    C2U = "c2u"
    U2C = "u2c"
    BOTH = "both"

    def covers(self, flow: Flow) -> bool:
        return self is Direction.BOTH or self.value == flow


@dataclass(frozen=True)
class Select:
    """Which connections a fault applies to; every condition that is set must hold.

    Connections are numbered per route in accept order from 0. ``first=N`` picks indices
    0..N-1; ``every=k`` picks the k-th, 2k-th, ... connection (indices k-1, 2k-1, ...);
    ``probability=p`` picks each connection with probability p, drawn from ``seed`` and the
    index alone, so the same seed picks the same connections in every run and in any
    accept interleaving.
    """

    first: int | None = None
    every: int | None = None
    probability: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.first is not None and self.first < 0:
            raise ValueError(f"first must be >= 0, got {self.first}")
        if self.every is not None and self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {self.probability}")

    def describe(self) -> str:
        parts = []
        if self.first is not None:
            parts.append(f"first {self.first}")
        if self.every is not None:
            parts.append(f"every {self.every}th")
        if self.probability is not None:
            parts.append(f"p={self.probability:g} seed={self.seed}")
        return ", ".join(parts) or "all"


ALL = Select()


def _draw(seed: int, index: int) -> float:
    # A string seed goes through SHA-512 in random.seed (version 2): stable across runs,
    # platforms and PYTHONHASHSEED, and independent of the order connections arrive in.
    return random.Random(f"lagscope:{seed}:{index}").random()


def selects(select: Select, index: int) -> bool:
    """Whether the connection with this accept index is selected."""
    if select.first is not None and index >= select.first:
        return False
    if select.every is not None and (index + 1) % select.every != 0:
        return False
    return select.probability is None or _draw(select.seed, index) < select.probability


def selected_indices(select: Select, count: int) -> list[int]:
    """The indices among the first ``count`` connections that ``select`` picks."""
    return [i for i in range(count) if selects(select, i)]


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class ConnectionTax:
    """Hold a new connection's first bytes for ``delay_ms``, once per connection.

    The clock starts when the first chunk of the connection is read (in any covered
    direction); every covered direction forwards its first chunk no earlier than that
    deadline. A request/response exchange therefore pays the tax once, not once per
    direction, and a reused connection never pays it again: the signature of real-time
    stream inspection.
    """

    delay_ms: float
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)


@dataclass(frozen=True)
class FirstChunkDelay:
    """Delay only the first chunk of each covered direction by ``delay_ms`` after it was read."""

    delay_ms: float
    direction: Direction = Direction.U2C
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)


@dataclass(frozen=True)
class Latency:
    """Forward every chunk ``delay_ms`` ± ``jitter_ms`` after it was read.

    Delays do not accumulate: each chunk's clock starts when that chunk was read, and later
    chunks keep being read while earlier ones wait (order is preserved, as TCP must).
    Jitter is uniform in [-jitter_ms, +jitter_ms], clipped at 0, drawn from ``seed`` and the
    connection index.
    """

    delay_ms: float
    jitter_ms: float = 0.0
    direction: Direction = Direction.BOTH
    select: Select = ALL
    seed: int = 0

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)
        _non_negative("jitter_ms", self.jitter_ms)


@dataclass(frozen=True)
class Bandwidth:
    """Cap each covered direction at ``bytes_per_s``."""

    bytes_per_s: int
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        if self.bytes_per_s < 1:
            raise ValueError(f"bytes_per_s must be >= 1, got {self.bytes_per_s}")


@dataclass(frozen=True)
class Reset:
    """Reset (TCP RST) both sides: at connect when ``after_bytes`` is 0, else once
    ``after_bytes`` bytes have been forwarded in a covered direction."""

    after_bytes: int = 0
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("after_bytes", self.after_bytes)


@dataclass(frozen=True)
class SlowClose:
    """Hold a direction's end-of-stream (FIN) for ``delay_ms`` before passing it on."""

    delay_ms: float
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)


@dataclass(frozen=True)
class BlackHole:
    """Accept and never forward: bytes in covered directions are read and dropped.

    With ``direction=both`` the upstream is never dialled.
    """

    direction: Direction = Direction.BOTH
    select: Select = ALL


@dataclass(frozen=True)
class DialDelay:
    """Wait ``delay_ms`` before dialling the upstream (off the accept path)."""

    delay_ms: float
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)


Fault: TypeAlias = (
    ConnectionTax
    | FirstChunkDelay
    | Latency
    | Bandwidth
    | Reset
    | SlowClose
    | BlackHole
    | DialDelay
)


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
class FlowPlan:
    """What happens to one direction of one connection (all faults resolved)."""

    tax: bool = False
    first_delay_ms: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bytes_per_s: int | None = None
    reset_after_bytes: int | None = None
    slow_close_ms: float = 0.0
    black_hole: bool = False

    @property
    def per_chunk(self) -> bool:
        """Chunks wait independently, so reading must run ahead of writing."""
        return self.latency_ms > 0 or self.jitter_ms > 0

    @property
    def passthrough(self) -> bool:
        return self == _PASSTHROUGH


_PASSTHROUGH = FlowPlan()


@dataclass(frozen=True)
class ConnectionPlan:
    index: int
    tax_ms: float = 0.0
    dial_delay_ms: float = 0.0
    reset_at_connect: bool = False
    c2u: FlowPlan = _PASSTHROUGH
    u2c: FlowPlan = _PASSTHROUGH
    jitter_seed: int = 0
    applied: tuple[str, ...] = field(default=())

    def flow(self, flow: Flow) -> FlowPlan:
        return self.c2u if flow == "c2u" else self.u2c

    @property
    def black_hole(self) -> bool:
        """Both directions dropped: no upstream is needed."""
        return self.c2u.black_hole and self.u2c.black_hole


def _fault_name(fault: Fault) -> str:
    return type(fault).__name__


@dataclass
class _FlowDraft:
    # Mutable only while one plan is being resolved; frozen into a FlowPlan at the end.
    tax: bool = False
    first_delay_ms: float = 0.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bytes_per_s: int | None = None
    reset_after_bytes: int | None = None
    slow_close_ms: float = 0.0
    black_hole: bool = False

    def add(self, fault: Fault) -> None:
        if isinstance(fault, ConnectionTax):
            self.tax = True
        elif isinstance(fault, FirstChunkDelay):
            self.first_delay_ms += fault.delay_ms
        elif isinstance(fault, Latency):
            self.latency_ms += fault.delay_ms
            self.jitter_ms += fault.jitter_ms
        elif isinstance(fault, Bandwidth):
            old_rate = self.bytes_per_s
            self.bytes_per_s = (
                fault.bytes_per_s if old_rate is None else min(old_rate, fault.bytes_per_s)
            )
        elif isinstance(fault, Reset):
            old = self.reset_after_bytes
            self.reset_after_bytes = (
                fault.after_bytes if old is None else min(old, fault.after_bytes)
            )
        elif isinstance(fault, SlowClose):
            self.slow_close_ms += fault.delay_ms
        elif isinstance(fault, BlackHole):
            self.black_hole = True

    def freeze(self) -> FlowPlan:
        return FlowPlan(
            tax=self.tax,
            first_delay_ms=self.first_delay_ms,
            latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms,
            bytes_per_s=self.bytes_per_s,
            reset_after_bytes=self.reset_after_bytes,
            slow_close_ms=self.slow_close_ms,
            black_hole=self.black_hole,
        )


def plan_connection(faults: Sequence[Fault], index: int) -> ConnectionPlan:
    """Resolve a route's faults for the connection with accept ``index``.

    Several faults of one kind combine: delays add, the lowest bandwidth and the earliest
    reset win.
    """
    tax_ms = 0.0
    dial_ms = 0.0
    reset_now = False
    jitter_seed = 0
    drafts: dict[Flow, _FlowDraft] = {"c2u": _FlowDraft(), "u2c": _FlowDraft()}
    applied: list[str] = []

    for fault in faults:
        if not selects(fault.select, index):
            continue
        applied.append(_fault_name(fault))
        if isinstance(fault, DialDelay):
            dial_ms += fault.delay_ms
            continue
        if isinstance(fault, Reset) and fault.after_bytes == 0:
            reset_now = True
            continue
        if isinstance(fault, ConnectionTax):
            tax_ms += fault.delay_ms
        if isinstance(fault, Latency):
            jitter_seed = fault.seed
        for flow in FLOWS:
            if fault.direction.covers(flow):
                drafts[flow].add(fault)

    return ConnectionPlan(
        index=index,
        tax_ms=tax_ms,
        dial_delay_ms=dial_ms,
        reset_at_connect=reset_now,
        c2u=drafts["c2u"].freeze(),
        u2c=drafts["u2c"].freeze(),
        jitter_seed=jitter_seed,
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

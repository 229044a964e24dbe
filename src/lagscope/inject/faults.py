"""The fault vocabulary of ``lagscope inject``: one class per kind of fault, pure.

This module owns what a fault is. Each kind is one frozen dataclass that knows its CLI/TOML
name, how to build itself from key/value pairs (:meth:`Fault.from_values`), how to describe
itself in a line, and what it does to a connection's plan (:meth:`Fault.plan`, writing into
a :class:`ConnectionDraft`). Subclasses register themselves by their ``kind``, so a new
fault is one class here and nothing else. It also owns the selection rule (:class:`Select`)
and the directions (:class:`Direction`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

__all__ = [
    "ALL",
    "FAULT_KINDS",
    "FLOWS",
    "PASSTHROUGH",
    "Bandwidth",
    "BlackHole",
    "ConnectionDraft",
    "ConnectionTax",
    "DialDelay",
    "Direction",
    "Fault",
    "FaultSpecError",
    "FirstChunkDelay",
    "Flow",
    "FlowPlan",
    "Latency",
    "Reset",
    "Select",
    "SlowClose",
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


# -- what a fault writes into while one connection's plan is resolved -----------------------


@dataclass(frozen=True)
class FlowPlan:
    """What happens to one direction of one connection (all faults resolved).

    A fault's :meth:`_Directional.plan_flow` returns a changed copy, so the one field list
    serves both the plan being resolved and the resolved plan.
    """

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
        return self == PASSTHROUGH


# A direction no fault touches.
PASSTHROUGH = FlowPlan()


def _passthrough_flows() -> dict[Flow, FlowPlan]:
    return {"c2u": PASSTHROUGH, "u2c": PASSTHROUGH}


@dataclass
class ConnectionDraft:
    """A connection's plan while it is being resolved (``plan.plan_connection`` freezes it)."""

    tax_ms: float = 0.0
    dial_delay_ms: float = 0.0
    reset_at_connect: bool = False
    jitter_seed: int = 0
    flows: dict[Flow, FlowPlan] = field(default_factory=_passthrough_flows)


# -- the fault classes ----------------------------------------------------------------------


class FaultSpecError(ValueError):
    """A fault's key/value pairs do not describe a valid fault (message names the kind)."""


# Selection keys of every fault: the spec's name -> the Select field.
_SELECT_KEYS = {"first_n": "first", "every": "every", "probability": "probability", "seed": "seed"}
_SELECT_TYPES: dict[str, type] = {"first": int, "every": int, "probability": float, "seed": int}

_F = TypeVar("_F", bound="Fault")


def _convert(kind: str, key: str, target: type, value: object) -> object:
    try:
        if target is Direction:
            return Direction(str(value))
        if isinstance(value, bool):
            raise ValueError
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)  # type: ignore[call-overload]
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number):
            # nan would silently apply nothing and inf would hold bytes forever.
            raise ValueError
        return number
    except (ValueError, TypeError, OverflowError):
        raise FaultSpecError(f"{kind}: bad value for {key}: {value!r}") from None


class Fault:
    """The contract every fault kind fulfils (subclasses are frozen dataclasses).

    ``kind`` is the CLI/TOML name and ``bare`` the field a bare value sets (``tax:300``).
    A subclass with a ``kind`` registers itself in :data:`FAULT_KINDS`.
    """

    kind: ClassVar[str]
    bare: ClassVar[str | None] = None
    select: Select

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            FAULT_KINDS[cls.kind] = cls

    def plan(self, draft: ConnectionDraft) -> None:
        """Write what this fault does into the plan of one (selected) connection."""
        raise NotImplementedError

    def effect(self) -> str:
        """What the fault does, in a few words (without the selection)."""
        return self.action()

    def action(self) -> str:
        """The effect without the direction (a directional fault adds it to this)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short human description, e.g. ``tax 300 ms (both)`` or ``reset after 1024 B (u2c)``."""
        selection = self.select.describe()
        text = self.effect()
        return text if selection == "all" else f"{text} [{selection}]"

    def waits_ms(self) -> tuple[float, ...]:
        """The timer waits this fault asks for (to spot ones below a coarse timer's tick)."""
        return ()

    @classmethod
    def from_values(cls: type[_F], values: Mapping[str, object]) -> _F:
        """Build from key/value pairs (a CLI spec or a TOML table).

        Selection keys ``first_n``, ``every``, ``probability`` and ``seed`` go to the
        fault's :class:`Select` (``seed`` also seeds Latency jitter). Raises
        :class:`FaultSpecError`.
        """
        hints = typing.get_type_hints(cls)
        own = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        own.pop("select", None)
        kwargs: dict[str, Any] = {}
        select: dict[str, Any] = {}
        for key, raw in values.items():
            if key in _SELECT_KEYS:
                target = _SELECT_KEYS[key]
                value = _convert(cls.kind, key, _SELECT_TYPES[target], raw)
                select[target] = value
                if key == "seed" and "seed" in own:
                    kwargs["seed"] = value
            elif key in own:
                kwargs[key] = _convert(cls.kind, key, _field_type(hints[key]), raw)
            else:
                allowed = sorted(set(own) | set(_SELECT_KEYS))
                raise FaultSpecError(
                    f"{cls.kind}: unknown key {key!r} (allowed: {', '.join(allowed)})"
                )
        missing = [
            f.name
            for f in own.values()
            if f.name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            example = f" (e.g. {cls.kind}:300)" if missing[0] == cls.bare else ""
            raise FaultSpecError(f"{cls.kind}: needs a value for {', '.join(missing)}{example}")
        try:
            return cls(**kwargs, select=Select(**select))  # type: ignore[call-arg]
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"{cls.kind}: {exc}") from None


def _field_type(hint: object) -> type:
    # int | None and the like: the non-None member decides the conversion.
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    found = args[0] if args else hint
    return found if isinstance(found, type) else float


# Fault kinds by their CLI/TOML name, filled by Fault.__init_subclass__ in definition order.
FAULT_KINDS: dict[str, type[Fault]] = {}


def _non_negative(name: str, value: float) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


class _Directional(Fault):
    """A fault that acts on each direction it covers."""

    direction: Direction

    def plan(self, draft: ConnectionDraft) -> None:
        for flow in FLOWS:
            if self.direction.covers(flow):
                draft.flows[flow] = self.plan_flow(draft.flows[flow])

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        """One covered direction's plan with this fault added."""
        raise NotImplementedError

    def effect(self) -> str:
        return f"{self.action()} ({self.direction.value})"


@dataclass(frozen=True)
class _Delay(Fault):
    """A fault that waits ``delay_ms`` (a bare value sets it): validation, the line that
    describes it and the wait it asks of the timer, once for every waiting kind."""

    bare: ClassVar[str | None] = "delay_ms"
    # How the description names the wait: "tax", "slow close".
    label: ClassVar[str]

    delay_ms: float

    def __post_init__(self) -> None:
        _non_negative("delay_ms", self.delay_ms)

    def action(self) -> str:
        return f"{self.label} {self.delay_ms:g} ms"

    def waits_ms(self) -> tuple[float, ...]:
        return (self.delay_ms,)


@dataclass(frozen=True)
class ConnectionTax(_Directional, _Delay):
    """Hold a new connection's first bytes for ``delay_ms``, once per connection.

    The clock starts when the first chunk of the connection is read (in any covered
    direction); every covered direction forwards its first chunk no earlier than that
    deadline. A request/response exchange therefore pays the tax once, not once per
    direction, and a reused connection never pays it again: the signature of real-time
    stream inspection.
    """

    kind: ClassVar[str] = "tax"
    label: ClassVar[str] = "tax"

    direction: Direction = Direction.BOTH
    select: Select = ALL

    def plan(self, draft: ConnectionDraft) -> None:
        draft.tax_ms += self.delay_ms
        super().plan(draft)

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        return dataclasses.replace(flow, tax=True)


@dataclass(frozen=True)
class FirstChunkDelay(_Directional, _Delay):
    """Delay only the first chunk of each covered direction by ``delay_ms`` after it was read."""

    kind: ClassVar[str] = "first"
    label: ClassVar[str] = "first-chunk delay"

    direction: Direction = Direction.U2C
    select: Select = ALL

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        return dataclasses.replace(flow, first_delay_ms=flow.first_delay_ms + self.delay_ms)


@dataclass(frozen=True)
class Latency(_Directional, _Delay):
    """Forward every chunk ``delay_ms`` ± ``jitter_ms`` after it was read.

    Delays do not accumulate: each chunk's clock starts when that chunk was read, and later
    chunks keep being read while earlier ones wait (order is preserved, as TCP must).
    Jitter is uniform in [-jitter_ms, +jitter_ms], clipped at 0, drawn from ``seed`` and the
    connection index.
    """

    kind: ClassVar[str] = "latency"
    label: ClassVar[str] = "latency"

    jitter_ms: float = 0.0
    direction: Direction = Direction.BOTH
    select: Select = ALL
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative("jitter_ms", self.jitter_ms)

    def plan(self, draft: ConnectionDraft) -> None:
        draft.jitter_seed = self.seed
        super().plan(draft)

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        return dataclasses.replace(
            flow,
            latency_ms=flow.latency_ms + self.delay_ms,
            jitter_ms=flow.jitter_ms + self.jitter_ms,
        )

    def action(self) -> str:
        jitter = f"±{self.jitter_ms:g}" if self.jitter_ms else ""
        return f"latency {self.delay_ms:g}{jitter} ms/chunk"

    def waits_ms(self) -> tuple[float, ...]:
        return (self.delay_ms, self.jitter_ms)


@dataclass(frozen=True)
class Bandwidth(_Directional):
    """Cap each covered direction at ``bytes_per_s``."""

    kind: ClassVar[str] = "bandwidth"
    bare: ClassVar[str | None] = "bytes_per_s"

    bytes_per_s: int
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        if self.bytes_per_s < 1:
            raise ValueError(f"bytes_per_s must be >= 1, got {self.bytes_per_s}")

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        old = flow.bytes_per_s
        cap = self.bytes_per_s if old is None else min(old, self.bytes_per_s)
        return dataclasses.replace(flow, bytes_per_s=cap)

    def action(self) -> str:
        return f"bandwidth {self.bytes_per_s} B/s"


@dataclass(frozen=True)
class Reset(_Directional):
    """Reset (TCP RST) both sides: at connect when ``after_bytes`` is 0, else once
    ``after_bytes`` bytes have been forwarded in a covered direction."""

    kind: ClassVar[str] = "reset"
    bare: ClassVar[str | None] = "after_bytes"

    after_bytes: int = 0
    direction: Direction = Direction.BOTH
    select: Select = ALL

    def __post_init__(self) -> None:
        _non_negative("after_bytes", self.after_bytes)

    def plan(self, draft: ConnectionDraft) -> None:
        if self.after_bytes == 0:
            draft.reset_at_connect = True
        else:
            super().plan(draft)

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        old = flow.reset_after_bytes
        after = self.after_bytes if old is None else min(old, self.after_bytes)
        return dataclasses.replace(flow, reset_after_bytes=after)

    def action(self) -> str:
        return "reset " + ("at connect" if self.after_bytes == 0 else f"after {self.after_bytes} B")


@dataclass(frozen=True)
class SlowClose(_Directional, _Delay):
    """Hold a direction's end-of-stream (FIN) for ``delay_ms`` before passing it on."""

    kind: ClassVar[str] = "slow-close"
    label: ClassVar[str] = "slow close"

    direction: Direction = Direction.BOTH
    select: Select = ALL

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        return dataclasses.replace(flow, slow_close_ms=flow.slow_close_ms + self.delay_ms)


@dataclass(frozen=True)
class BlackHole(_Directional):
    """Accept and never forward: bytes in covered directions are read and dropped.

    With ``direction=both`` the upstream is never dialled.
    """

    kind: ClassVar[str] = "blackhole"

    direction: Direction = Direction.BOTH
    select: Select = ALL

    def plan_flow(self, flow: FlowPlan) -> FlowPlan:
        return dataclasses.replace(flow, black_hole=True)

    def action(self) -> str:
        return "black hole"


@dataclass(frozen=True)
class DialDelay(_Delay):
    """Wait ``delay_ms`` before dialling the upstream (off the accept path)."""

    kind: ClassVar[str] = "dial"
    label: ClassVar[str] = "dial delay"

    select: Select = ALL

    def plan(self, draft: ConnectionDraft) -> None:
        draft.dial_delay_ms += self.delay_ms

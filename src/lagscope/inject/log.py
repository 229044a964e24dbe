"""The ground-truth log: one record per proxied connection, and the live counters.

This module owns the record model (frozen dataclasses), its JSON-lines form (one object
per line, stable key names documented in docs/inject.md) and the counter snapshot. It does
no I/O except :class:`JsonlWriter`, which appends lines to a file the user asked for.

Times: ``accepted_at`` is wall-clock Unix seconds; every other time is milliseconds after
accept on a monotonic clock, so records are comparable with what a client measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal

__all__ = [
    "END_REASONS",
    "ConnectionRecord",
    "Counters",
    "EndReason",
    "FlowRecord",
    "JsonlWriter",
    "record_from_json",
    "record_to_json",
]

# How a connection ended (the ``end`` field). Documented in docs/inject.md.
EndReason = Literal[
    "closed",
    "client_reset",
    "upstream_reset",
    "upstream_refused",
    "upstream_timeout",
    "injected_reset",
    "black_hole",
    "shutdown",
    "error",
]

END_REASONS: dict[EndReason, str] = {
    "closed": "both directions reached end-of-stream and were closed normally",
    "client_reset": "the client reset or broke the connection",
    "upstream_reset": "the upstream reset or broke the connection",
    "upstream_refused": "the upstream refused or could not be reached; the client was reset",
    "upstream_timeout": "dialling the upstream timed out; the client was reset",
    "injected_reset": "a Reset fault reset both sides",
    "black_hole": "a black-holed connection was closed by the client",
    "shutdown": "the proxy was stopped while the connection was open",
    "error": "an unexpected error; see the error field",
}


@dataclass(frozen=True)
class FlowRecord:
    """One direction of a connection (``c2u``: client to upstream, ``u2c``: back)."""

    # Bytes forwarded to the far side (dropped bytes are counted apart).
    bytes: int = 0
    dropped_bytes: int = 0
    # First byte read from the near side, and first byte written to the far side.
    first_in_ms: float | None = None
    first_out_ms: float | None = None
    # Total time chunks were held back by faults, measured around the actual waits.
    held_ms: float = 0.0
    # End-of-stream read from the near side, and passed on (half-close) to the far side.
    eof_in_ms: float | None = None
    eof_out_ms: float | None = None


@dataclass(frozen=True)
class ConnectionRecord:
    id: str
    route: str
    index: int
    client: str
    upstream: str
    # Names of the faults selected for this connection.
    faults: tuple[str, ...]
    accepted_at: float
    upstream_connected_ms: float | None
    closed_ms: float
    # The connection tax actually applied (measured wait of the first taxed chunk), and the
    # dial delay actually waited; None when the fault did not apply.
    tax_applied_ms: float | None
    dial_delay_applied_ms: float | None
    c2u: FlowRecord
    u2c: FlowRecord
    end: EndReason
    error: str | None = None

    @property
    def delay_applied_ms(self) -> float:
        """All fault-induced waiting on this connection, both directions plus dialling."""
        return self.c2u.held_ms + self.u2c.held_ms + (self.dial_delay_applied_ms or 0.0)


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 3)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj


def record_to_json(record: ConnectionRecord) -> str:
    """One JSON line (no trailing newline). Milliseconds are rounded to microseconds."""
    data = _rounded(asdict(record))
    data["accepted_at"] = round(record.accepted_at, 6)
    return json.dumps(data, separators=(",", ":"))


def record_from_json(line: str) -> ConnectionRecord:
    data = json.loads(line)
    if data.get("end") not in END_REASONS:
        raise ValueError(f"unknown end reason {data.get('end')!r}")
    data["faults"] = tuple(data["faults"])
    data["c2u"] = FlowRecord(**data["c2u"])
    data["u2c"] = FlowRecord(**data["u2c"])
    return ConnectionRecord(**data)


@dataclass(frozen=True)
class Counters:
    """A snapshot of the live counters (one route, or the sum of all routes)."""

    accepted: int = 0
    active: int = 0
    closed: int = 0
    bytes_c2u: int = 0
    bytes_u2c: int = 0
    taxed: int = 0
    resets_injected: int = 0
    upstream_failures: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            *(
                getattr(self, f) + getattr(other, f)
                for f in self.__dataclass_fields__  # field order is the constructor order
            )
        )


class JsonlWriter:
    """Appends records as JSON lines to a file, flushed per record so it can be tailed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, record: ConnectionRecord) -> None:
        if self._file is not None:
            self._file.write(record_to_json(record) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

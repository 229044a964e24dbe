"""The instrumentation settings: one commented, typed table. Pure.

Django reads it from ``settings.LAGSCOPE`` (keys are the field names in upper case), the
WSGI middleware takes the same names as keyword arguments in lower case, and
docs/server-timing.md lists the same rows (a test keeps them in step). Validation is
strict: an unknown key or a wrong type raises :class:`OptionsError`, which the Django
system check reports as ``lagscope.E001`` and the middlewares turn into "no header" (they
never break a response over a settings mistake).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "UNTRUSTED_CHOICES",
    "InstrumentOptions",
    "OptionsError",
    "options_from_mapping",
    "settings_rows",
    "settings_table_markdown",
]

UNTRUSTED_CHOICES = ("none", "total")


class OptionsError(ValueError):
    """A settings value that does not fit the table; the message names the key."""


@dataclass(frozen=True)
class InstrumentOptions:
    # Master switch. False: no timing and no header at all (the middleware only passes
    # the request through).
    enabled: bool = dataclasses.field(
        default=True, metadata={"doc": "Instrument requests and add the header."}
    )
    # What clients that are not trusted receive. "none" (the default) sends no header;
    # "total" sends only the `total` metric, which reveals how long the app took and
    # nothing about its structure.
    untrusted: str = dataclasses.field(
        default="none",
        metadata={"doc": 'What untrusted clients get: "none" (no header) or "total".'},
    )
    # Trust every client while settings.DEBUG is on (Django only).
    trust_debug: bool = dataclasses.field(
        default=True, metadata={"doc": "Trust every client while DEBUG is on (Django)."}
    )
    # Trust clients on 127.0.0.0/8 and ::1. Behind a local proxy the peer is always
    # loopback, so forwarded client addresses (X-Forwarded-For, X-Real-IP) must then be
    # trusted too; see docs/server-timing.md.
    trust_loopback: bool = dataclasses.field(
        default=True, metadata={"doc": "Trust loopback clients (and their forwarded clients)."}
    )
    # Trust clients whose address is in settings.INTERNAL_IPS (Django) or in the
    # `internal_ips` argument (WSGI).
    trust_internal_ips: bool = dataclasses.field(
        default=True, metadata={"doc": "Trust clients listed in INTERNAL_IPS."}
    )
    # A shared secret; a request whose `secret_header` equals it is trusted from anywhere.
    # Empty disables it. Never echoed anywhere.
    secret: str = dataclasses.field(
        default="", metadata={"doc": "Shared secret that makes any client trusted (empty: off)."}
    )
    # The request header that carries the secret.
    secret_header: str = dataclasses.field(
        default="X-Lagscope-Token", metadata={"doc": "Request header carrying the secret."}
    )
    # The request header a front proxy sets to its request-start time (nginx:
    # proxy_set_header X-Request-Start "t=${msec}";). Empty disables queue time.
    queue_header: str = dataclasses.field(
        default="X-Request-Start",
        metadata={"doc": "Proxy request-start header for queue time (empty: off)."},
    )
    # A request-start time further than this from our clock (seconds) is a clock problem,
    # not a queue, and is ignored.
    max_queue_s: float = dataclasses.field(
        default=600.0, metadata={"doc": "Ignore request-start times further off than this (s)."}
    )
    # Peer addresses remembered for connection identity when the server provides no
    # connection object; bounds memory at roughly 150 bytes per entry.
    connection_table_size: int = dataclasses.field(
        default=4096, metadata={"doc": "Peer addresses remembered for connection identity."}
    )
    # A peer address idle for longer than this (seconds) counts as a new connection;
    # 300 s is where browsers drop idle sockets.
    connection_idle_s: float = dataclasses.field(
        default=300.0, metadata={"doc": "An address idle this long (s) counts as new."}
    )

    def __post_init__(self) -> None:
        if self.untrusted not in UNTRUSTED_CHOICES:
            raise OptionsError(
                f"UNTRUSTED must be one of {', '.join(UNTRUSTED_CHOICES)}, got {self.untrusted!r}"
            )
        if self.connection_table_size < 1:
            raise OptionsError("CONNECTION_TABLE_SIZE must be at least 1")
        if self.max_queue_s <= 0 or self.connection_idle_s <= 0:
            raise OptionsError("MAX_QUEUE_S and CONNECTION_IDLE_S must be positive")


_FIELDS = {f.name: f for f in dataclasses.fields(InstrumentOptions)}
_TYPES: dict[str, tuple[type, ...]] = {
    "enabled": (bool,),
    "untrusted": (str,),
    "trust_debug": (bool,),
    "trust_loopback": (bool,),
    "trust_internal_ips": (bool,),
    "secret": (str,),
    "secret_header": (str,),
    "queue_header": (str,),
    "max_queue_s": (int, float),
    "connection_table_size": (int,),
    "connection_idle_s": (int, float),
}
assert set(_TYPES) == set(_FIELDS), "every option needs a type row"


def settings_rows() -> tuple[tuple[str, object, str], ...]:
    """(Django setting key, default, one-line doc) for every option, in table order."""
    return tuple((f.name.upper(), f.default, str(f.metadata["doc"])) for f in _FIELDS.values())


def settings_table_markdown() -> str:
    """The settings table as docs/server-timing.md shows it (a test compares the two)."""
    lines = ["| key (`LAGSCOPE[...]`) | default | meaning |", "|---|---|---|"]
    lines += [f"| `{key}` | `{default!r}` | {doc} |" for key, default, doc in settings_rows()]
    return "\n".join(lines)


def options_from_mapping(raw: object) -> InstrumentOptions:
    """Validate ``raw`` (upper- or lower-case keys) against the table."""
    if not isinstance(raw, Mapping):
        raise OptionsError(f"LAGSCOPE must be a dict, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).lower()
        if name not in _FIELDS:
            raise OptionsError(f"unknown key {key!r}; known: {', '.join(sorted(_FIELDS))}")
        types = _TYPES[name]
        # bool is an int subclass; a True where a number belongs is a mistake.
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            expected = " or ".join(t.__name__ for t in types)
            raise OptionsError(f"{name.upper()} must be {expected}, got {value!r}")
        values[name] = value
    return InstrumentOptions(**values)

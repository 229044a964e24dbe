"""``lagscope inject``: a pure-Python asyncio TCP proxy that injects faults on demand.

The public API: :class:`Injector` runs routes, each a :class:`Route` with faults
(:class:`ConnectionTax`, :class:`FirstChunkDelay`, :class:`Latency`, :class:`Bandwidth`,
:class:`Reset`, :class:`SlowClose`, :class:`BlackHole`, :class:`DialDelay`) applied to a
:class:`Select`-ion of connections, and records one :class:`ConnectionRecord` per
connection. See docs/inject.md.
"""

from __future__ import annotations

from lagscope.inject.api import Injector
from lagscope.inject.config import ProxySettings, load_routes_toml, parse_fault, parse_route
from lagscope.inject.log import ConnectionRecord, Counters, FlowRecord
from lagscope.inject.plan import (
    ALL,
    Bandwidth,
    BlackHole,
    ConnectionTax,
    DialDelay,
    Direction,
    Fault,
    FirstChunkDelay,
    Latency,
    Reset,
    Route,
    Select,
    SlowClose,
)

__all__ = [
    "ALL",
    "Bandwidth",
    "BlackHole",
    "ConnectionRecord",
    "ConnectionTax",
    "Counters",
    "DialDelay",
    "Direction",
    "Fault",
    "FirstChunkDelay",
    "FlowRecord",
    "Injector",
    "Latency",
    "ProxySettings",
    "Reset",
    "Route",
    "Select",
    "SlowClose",
    "load_routes_toml",
    "parse_fault",
    "parse_route",
]

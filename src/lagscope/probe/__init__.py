"""``lagscope probe``: the latency anatomy of an HTTP endpoint, cold versus warm."""

from __future__ import annotations

"""Diagnosis rules: one small pure unit per finding, over measured evidence. Pure.

Each rule is a function ``(evidence, thresholds, earlier findings) -> Finding | None`` in a
module of its family (the families share evidence: connections, the proxy hop, the
database...). :data:`RULES` is the plain list of them in the order they run: a rule may
defer to an earlier finding that already carries the same cost, as ``db-connect-slow``
does to ``db-connect-per-request``. Thresholds come only from
:mod:`lagscope.diagnose.thresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from lagscope.diagnose.evidence import Evidence
from lagscope.diagnose.model import Finding
from lagscope.diagnose.rules.app import many_queries, slow_app
from lagscope.diagnose.rules.browser import page_new_connections
from lagscope.diagnose.rules.connections import (
    connection_setup_tax,
    keepalive_closed_early,
    keepalive_refused,
    setup_cost_ms,
)
from lagscope.diagnose.rules.database import (
    DB_KEEP_CONNECTIONS_FIX,
    db_connect_per_request,
    db_connect_slow,
)
from lagscope.diagnose.rules.environment import proxy_env
from lagscope.diagnose.rules.hygiene import large_payload, redirects, uncompressed_text
from lagscope.diagnose.rules.outside import outside_app_every_request, unexplained_time
from lagscope.diagnose.rules.proxy import proxy_hop_slow, upstream_no_keepalive
from lagscope.diagnose.rules.queueing import server_queueing
from lagscope.diagnose.rules.resolution import (
    fallback_cost_ms,
    localhost_fallback,
    slow_name_resolution,
)
from lagscope.diagnose.rules.small_writes import small_write_stall
from lagscope.diagnose.rules.warmup import worker_warmup
from lagscope.diagnose.thresholds import Thresholds

__all__ = [
    "DB_KEEP_CONNECTIONS_FIX",
    "RULES",
    "Rule",
    "db_connect_slow",
    "evaluate",
    "fallback_cost_ms",
    "setup_cost_ms",
]


class Rule(Protocol):
    """One finding's rule: the evidence, the thresholds and what earlier rules found."""

    def __call__(
        self, ev: Evidence, t: Thresholds, found: Sequence[Finding], /
    ) -> Finding | None: ...


RULES: tuple[Rule, ...] = (
    proxy_env,
    localhost_fallback,
    slow_name_resolution,
    connection_setup_tax,
    page_new_connections,
    keepalive_refused,
    keepalive_closed_early,
    upstream_no_keepalive,
    proxy_hop_slow,
    db_connect_per_request,
    worker_warmup,
    db_connect_slow,
    small_write_stall,
    outside_app_every_request,
    server_queueing,
    many_queries,
    redirects,
    uncompressed_text,
    large_payload,
    slow_app,
    unexplained_time,
)


def evaluate(ev: Evidence, t: Thresholds, rules: Sequence[Rule] = RULES) -> tuple[Finding, ...]:
    """Every rule over the evidence, worst first."""
    found: list[Finding] = []
    for rule in rules:
        finding = rule(ev, t, tuple(found))
        if finding is not None:
            found.append(finding)
    return tuple(sorted(found, key=lambda f: f.rank))

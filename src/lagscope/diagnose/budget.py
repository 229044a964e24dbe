"""Where the time of a typical request goes: the cold and warm budgets. Pure.

A warm request's median total is split into transfer (send + receive), the app (with its
view, template, database and connect parts, from Server-Timing), queue (the proxy's
``X-Request-Start``), the proxy hop (when ``--direct`` measured it), and what is left:
unexplained. A cold request adds connection setup (cold minus warm). The top-level items
add up to the total by construction (where the server's figures overlap the transfer, the
transfer is what lies outside them); "unexplained" is never negative, and a large one says
the evidence is thin. What the measured parts leave unexplained but a finding's evidence
prices (a proxy's upstream connects, time outside the app, the whole wait of an app that
reports no timing) is named after it, taken from "unexplained".
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

from lagscope.diagnose.evidence import Evidence, metric_ms
from lagscope.diagnose.model import Budget, BudgetItem, Finding
from lagscope.diagnose.rules.outside import held_transfer_ms
from lagscope.probe.model import RequestRecord

__all__ = ["budgets"]

_APP_PARTS = ("view", "tpl", "db", "dbconn")


def _median(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(statistics.median(got)) if got else None


# Items sized as what is left when the measured parts overshoot the total, in this order:
# the transfer overlaps an app timer that runs while the body streams out; the setup is a
# difference of two medians, noise when new connections cost nothing.
_ELASTIC = ("transfer", "connection setup")


def _settle(items: list[BudgetItem], total: float) -> list[BudgetItem]:
    """``items`` plus "unexplained", every top-level item between 0 and ``total``: where the
    measured parts add up to more than the total, the elastic ones shrink (never below 0)
    and nothing is unexplained. A negative item or a bar longer than the total would claim
    time that does not exist."""
    items = [replace(i, ms=max(0.0, i.ms)) if i.name in _ELASTIC else i for i in items]
    for name in _ELASTIC:
        over = sum(i.ms for i in items if i.within is None) - total
        if over <= 0:
            break
        items = [replace(i, ms=max(0.0, i.ms - over)) if i.name == name else i for i in items]
    explained = sum(i.ms for i in items if i.within is None)
    return [*items, BudgetItem("unexplained", max(0.0, total - explained))]


def _warm_parts(warm: Sequence[RequestRecord], hop_ms: float) -> list[BudgetItem]:
    transfer = (_median([r.send_ms for r in warm]) or 0.0) + (
        _median([r.receive_ms for r in warm]) or 0.0
    )
    items = [BudgetItem("transfer", transfer)]
    app = _median([r.app_ms() for r in warm])
    queue = _median([metric_ms(r, "queue") for r in warm])
    if queue is not None:
        items.append(BudgetItem("queue", queue))
    if app is not None:
        items.append(BudgetItem("app", app))
        for part in _APP_PARTS:
            value = _median([metric_ms(r, part) or 0.0 for r in warm])
            if value:
                items.append(BudgetItem(f"app.{part}", value, within="app"))
    if hop_ms > 0:
        items.append(BudgetItem("proxy hop", hop_ms))
    return items


def _setup_items(
    cold: Sequence[RequestRecord], setup_ms: float, lookup_ms: float
) -> list[BudgetItem]:
    """A new connection's extra time: the name lookup and failed addresses, each claimed by
    its own finding, and the rest. ``lookup_ms``: a lookup the cold series did not make
    (the run pinned the address after a slow one), which a new connection pays on top."""
    resolve = (_median([r.resolve_ms for r in cold]) or 0.0) + lookup_ms
    fallback = (
        _median([sum(a.ms for a in r.attempts if a.outcome != "connected") for r in cold]) or 0.0
    )
    items = []
    if resolve:
        items.append(BudgetItem("name resolution", resolve))
    if fallback:
        items.append(BudgetItem("address fallback", fallback))
    items.append(BudgetItem("connection setup", setup_ms + lookup_ms - resolve - fallback))
    return items


def _unmade_lookup_ms(ev: Evidence) -> float:
    """The name's lookup when the cold series did not make it (the address was pinned
    after a slow lookup): what every new connection of a real client pays on top."""
    res, cw = ev.resolution, ev.coldwarm
    if res is None or cw is None or not res.is_name or res.source == "pinned":
        return 0.0
    if any(r.resolve_ms is not None for r in cw.cold):
        return 0.0
    return _median(list(res.resolve_ms)) or 0.0


# Findings that price time every request spends where the measured parts cannot see it (the
# wait outside the app's own account, or all of it when the app reports none), and the item
# that names it: claimed from "unexplained", never more than it holds, so the bar says what
# the finding's evidence says instead of "unexplained". ``adds``: the item may exist and
# take the claim on top (a refused keep-alive's setup is the connect, the tax comes on top);
# otherwise an item already measured (the app's own account, a --direct hop) is not claimed
# twice.
_CLAIMS: tuple[tuple[str, str, bool], ...] = (
    ("connection-setup-tax", "connection setup", True),
    ("upstream-no-keepalive", "proxy: new upstream connection", False),
    ("proxy-hop-slow", "proxy hop", False),
    ("outside-app-every-request", "outside the app", False),
    ("db-connect-per-request", "app", False),
    ("slow-app", "app", False),
)


def _from_transfer(items: list[BudgetItem], findings: Sequence[Finding]) -> float:
    """Move what ``outside-app-every-request`` says is held of the body's arrival out of
    "transfer" into "outside the app"; what it moved."""
    held = held_transfer_ms(findings)
    transfer = next((i for i in items if i.name == "transfer" and i.within is None), None)
    if not held or transfer is None or transfer.ms <= 0:
        return 0.0
    take = min(held, transfer.ms)
    items[items.index(transfer)] = replace(transfer, ms=transfer.ms - take)
    items.insert(len(items) - 1, BudgetItem("outside the app", take))
    return take


def _claim(budget: Budget, findings: Sequence[Finding]) -> Budget:
    items = list(budget.items)
    moved = _from_transfer(items, findings)
    for finding_id, name, adds in _CLAIMS:
        f = next((f for f in findings if f.id == finding_id), None)
        if f is None or f.severity == "info" or f.affects != "every request" or not f.cost_ms:
            continue
        cost_ms = f.cost_ms - (moved if finding_id == "outside-app-every-request" else 0.0)
        left = items[-1].ms  # "unexplained", last by construction
        existing = next((i for i in items if i.name == name and i.within is None), None)
        if moved and finding_id == "outside-app-every-request":
            adds = True  # the item is the transfer's share just moved; the rest comes on top
        if left <= 0 or cost_ms <= 0 or (existing is not None and not adds):
            continue
        take = min(left, cost_ms)
        if existing is not None:
            items[items.index(existing)] = replace(existing, ms=existing.ms + take)
        else:
            items.insert(len(items) - 1, BudgetItem(name, take))
        items[-1] = replace(items[-1], ms=left - take)
    return replace(budget, items=tuple(items))


def budgets(ev: Evidence, findings: Sequence[Finding] = ()) -> tuple[Budget, ...]:
    """The warm and cold budgets; ``findings`` name the time the measured parts leave
    unexplained where their evidence explains it."""
    return tuple(_claim(b, findings) for b in _measured(ev))


def _measured(ev: Evidence) -> tuple[Budget, ...]:
    cw = ev.coldwarm
    if cw is None or not cw.warm:
        return ()
    hop_ms = 0.0
    if ev.direct is not None and ev.direct.warm:
        via = _median([r.total_ms for r in cw.warm]) or 0.0
        straight = _median([r.total_ms for r in ev.direct.warm]) or 0.0
        hop_ms = max(0.0, via - straight)
    warm_parts = _warm_parts(cw.warm, hop_ms)
    warm_total = _median([r.total_ms for r in cw.warm]) or 0.0
    out = [Budget("warm", warm_total, tuple(_settle(warm_parts, warm_total)))]
    if cw.cold:
        cold_total = _median([r.total_ms for r in cw.cold]) or 0.0
        if cw.keep_alive:
            lookup = _unmade_lookup_ms(ev)
            setup = _setup_items(cw.cold, cold_total - warm_total, lookup)
            cold_total += lookup
            parts = warm_parts
        else:
            # Keep-alive refused: "warm" requests were new connections too.
            setup = [
                BudgetItem("connection setup", _median([r.connect_ms for r in cw.cold]) or 0.0)
            ]
            parts = _warm_parts(cw.cold, hop_ms)
        out.append(Budget("cold", cold_total, tuple(_settle(setup + parts, cold_total))))
    return tuple(out)

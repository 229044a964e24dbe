"""The demo's narrow view of ``lagscope diagnose``: URL in, findings and its JSON out.

The runner takes a :data:`DiagnoseFn` as an ordinary parameter; :func:`default_diagnose`
adapts diagnose's ladder to it, with request counts and budgets sized for the demo's tax
(:func:`plan_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lagscope.diagnose.model import Finding

__all__ = ["DiagnoseFn", "DiagnoseOutcome", "default_diagnose"]


@dataclass(frozen=True)
class DiagnoseOutcome:
    """Diagnose's findings (its own :class:`Finding`) and its report in its JSON form."""

    findings: tuple[Finding, ...]
    report: Mapping[str, Any] | None


# What one request of the reference app costs besides the taxes (the view's own time and
# the loopback exchange), with room for a busy machine: the per-request part of a budget.
_REQUEST_ALLOWANCE_MS = 80.0
# Added once to the cold/warm rung's budget, for the rung's own start and end.
_RUNG_SLACK_S = 1.0

# URL, and the CA file to trust for it (the run's own CA for an https version) or None.
DiagnoseFn = Callable[[str, "str | None"], DiagnoseOutcome]


def plan_for(tax_ms: float, quick: bool) -> dict[str, Any]:
    """Diagnose's per-rung request counts and time budgets for a stack behind ``tax_ms``.

    The demo's own visit already shows the warm-up, so that rung gets a few requests
    only; cold vs warm gets enough of each and a budget that fits them even when every
    request also pays the database tax ("before": two taxes per cold request, one per warm
    one).
    """
    # 6 is the smallest series whose median has a 95 % interval (min to max); 9 is the
    # smallest where it leaves out the extremes, so one stall cannot blur the comparison.
    cold, warm = (6, 6) if quick else (9, 10)
    cold_s = (2 * tax_ms + _REQUEST_ALLOWANCE_MS) / 1000
    warm_s = (tax_ms + _REQUEST_ALLOWANCE_MS) / 1000
    return {
        "resolve_samples": 1,
        "sequence": 1 if quick else 2,
        "burst_clients": 2,
        "burst_requests": 1,
        "cold": cold,
        "warm": warm,
        "coldwarm_s": cold * cold_s + warm * warm_s + _RUNG_SLACK_S,
        # No queueing rung: the three diagnoses run side by side, so concurrency figures
        # would measure each other; the story is about connections.
        "queue_levels": (),
        "db_samples": 3,
        # The demo's servers keep idle connections 310 s or not at all: nothing to wait for.
        "idle_wait_s": 0.0,
    }


def default_diagnose(
    quick: bool, tax_ms: float, *, timeout_s: float, max_time_s: float
) -> DiagnoseFn:
    """``lagscope diagnose`` behind the demo's interface, with :func:`plan_for`'s plan and the
    demo's diagnose bounds (:class:`~lagscope.demo.runner.DemoOptions` rows)."""
    from lagscope.diagnose import DiagnoseOptions, Plan
    from lagscope.diagnose.ladder import diagnose as run_ladder
    from lagscope.diagnose.model import from_dict, to_dict
    from lagscope.probe.options import ProbeOptions, parse_url

    plan = Plan(**plan_for(tax_ms, quick))

    def diagnose(url: str, cafile: str | None = None) -> DiagnoseOutcome:
        probe = ProbeOptions(
            target=parse_url(url), timeout_s=timeout_s, max_time_s=max_time_s, cafile=cafile
        )
        opts = DiagnoseOptions(probe=probe, quick=quick, plan=plan, command=("lagscope", "demo"))
        data = to_dict(run_ladder(opts))
        # The findings as the saved JSON reads back, so a live run and its file agree.
        return DiagnoseOutcome(from_dict(data).findings, data)

    return diagnose

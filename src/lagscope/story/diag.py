"""The demo's narrow view of ``lagscope diagnose``: URL in, findings and its JSON out.

The runner takes a :data:`DiagnoseFn` as an ordinary parameter; :func:`default_diagnose`
adapts :func:`lagscope.diagnose.run` to it, or returns None when diagnose cannot be
loaded (the demo then says so in one line and still measures).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lagscope.story.model import Finding

__all__ = ["DiagnoseFn", "DiagnoseOutcome", "default_diagnose", "findings_from_dict"]


@dataclass(frozen=True)
class DiagnoseOutcome:
    findings: tuple[Finding, ...]
    report: Mapping[str, Any] | None


DiagnoseFn = Callable[[str], DiagnoseOutcome]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def findings_from_dict(report: Mapping[str, Any]) -> tuple[Finding, ...]:
    """The findings of a diagnose report in its JSON form."""
    found = []
    for item in report.get("findings") or ():
        affects = item.get("affects", "")
        if isinstance(affects, (list, tuple)):
            affects = ", ".join(str(a) for a in affects)
        found.append(
            Finding(
                id=str(item.get("id", "")),
                severity=str(item.get("severity", "")),
                cost_ms=_number(item.get("cost_ms")),
                affects=str(affects),
                fix=str(item.get("fix", "")),
            )
        )
    return tuple(found)


def default_diagnose(quick: bool) -> DiagnoseFn | None:
    """``lagscope.diagnose.run`` behind the demo's interface, or None if it is missing."""
    try:
        module = importlib.import_module("lagscope.diagnose")
    except ImportError:
        return None
    run = getattr(module, "run", None)
    if run is None:
        return None

    def diagnose(url: str) -> DiagnoseOutcome:
        report = run(url, quick=quick) if quick else run(url)
        data: Mapping[str, Any] = report.to_dict()
        return DiagnoseOutcome(findings_from_dict(data), data)

    return diagnose

"""``--budget``: what turns a probe or diagnose report into an exit code, one settings row.

Its own small module (the settings mechanism only), so ``lagscope diagnose --help`` reads
the row without loading probe's URL and address parsing. ``lagscope.probe.options``
re-exports :class:`Gate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.settings_table import setting, validate

__all__ = ["Gate"]


@dataclass(frozen=True)
class Gate:
    """What turns a report into an exit code (``--budget``), for probe and diagnose alike;
    applies to ``--load`` too."""

    budget_ms: float | None = setting(
        None,
        flag="--budget",
        unit="ms",
        help="Exit 1 when the typical warm request's total (the warm p50) exceeds this many "
        "ms (a CI gate).",
        why="a CI gate on the warm median, the figure that noise moves least",
        minimum=0,
    )

    def __post_init__(self) -> None:
        validate(self, phase="options")

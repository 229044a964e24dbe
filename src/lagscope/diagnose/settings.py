"""The diagnose settings table: the numbers a user can set on the command line.

Declared with :mod:`lagscope.settings_table`, so validation (finite, in range), the click
options and the docs table come from these rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.settings_table import markdown, setting, validate

__all__ = ["DiagnoseSettings", "docs_table"]


@dataclass(frozen=True)
class DiagnoseSettings:
    timeout_s: float = setting(
        10.0,
        help="Timeout of each phase of each request (connect, send, wait, receive).",
        unit="s",
        why="long enough for a 2 s Windows IPv6 fallback, short enough to report a dead server",
        minimum=0.001,
        maximum=3600,
        flag="--timeout",
    )
    max_time_s: float = setting(
        60.0,
        help="Bound on the whole run; later rungs are skipped and the report says so.",
        unit="s",
        why="a taxed stack takes ~10 s; this leaves room for a very slow one",
        minimum=0.01,
        maximum=3600,
        flag="--max-time",
    )
    budget_ms: float | None = setting(
        None,
        help="Exit 1 when the typical warm request's total exceeds this (a CI gate).",
        unit="ms",
        why="off unless asked for",
        minimum=0.001,
        maximum=3_600_000,
        flag="--budget",
    )

    browser_idle_s: float | None = setting(
        None,
        help="With --browser: also reload after the browser sat idle this long (Chrome "
        "closes unused idle sockets after 10 s, used ones after 300 s).",
        unit="s",
        why="off unless asked for: the run waits that long",
        minimum=0,
        maximum=900,
        flag="--browser-idle",
    )

    def __post_init__(self) -> None:
        validate(self)


def docs_table() -> str:
    """The settings table of docs/diagnose.md."""
    return markdown(DiagnoseSettings)

"""The settings of ``manage.py lagscope db``: the numbers a user can set, as rows of the one
settings mechanism (the argparse options, their defaults and bounds come from here)."""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.settings_table import markdown, setting, validate

__all__ = ["DbCheckSettings", "docs_table"]


@dataclass(frozen=True)
class DbCheckSettings:
    samples: int = setting(
        5,
        help="Connects (and round trips) per alias.",
        why="enough for a median; each connect is a few ms to a local PostgreSQL",
        minimum=1,
        maximum=100,
    )
    timeout_s: int = setting(
        10,
        flag="--timeout",
        unit="s",
        help="Bound on every PostgreSQL/MySQL connect, whatever OPTIONS' connect_timeout "
        "says (a shorter one there is kept).",
        why="a connect that takes longer is a failure worth reporting, not a slow one",
        minimum=1,
        maximum=600,
    )

    def __post_init__(self) -> None:
        validate(self)


def docs_table() -> str:
    """The settings table of docs/django.md's ``lagscope db``."""
    return markdown(DbCheckSettings)

"""The three versions of the reference app the demo compares: one table, pure.

Each :class:`VersionSpec` says what runs (plain waitress with given adjustments and Django's
``CONN_MAX_AGE``, or ``lagscope serve``) and which nginx config sits in front with
``--nginx``. The hand-tuned row is the fix from the story, setting for setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["VERSIONS", "VersionSpec"]


@dataclass(frozen=True)
class VersionSpec:
    name: str
    title: str
    server: Literal["waitress", "lagscope"]
    conn_max_age: int | None = 0
    waitress: tuple[tuple[str, str], ...] = ()
    # With --nginx: True = lagscope nginx-config (upstream keep-alive); False = the
    # tutorial config (proxy_pass straight to the address, a new upstream connection per
    # request).
    nginx_keepalive: bool = True

    def settings(self) -> tuple[tuple[str, str], ...]:
        if self.server == "lagscope":
            return (("server", "lagscope serve"), ("database", "pool, prewarmed"))
        cma = "None" if self.conn_max_age is None else str(self.conn_max_age)
        shown = ", ".join(f"{k}={v}" for k, v in self.waitress) or "defaults"
        return (("CONN_MAX_AGE", cma), ("waitress", shown))


VERSIONS: tuple[VersionSpec, ...] = (
    VersionSpec(
        "before",
        "Django defaults (CONN_MAX_AGE=0), waitress defaults",
        "waitress",
        conn_max_age=0,
        nginx_keepalive=False,
    ),
    VersionSpec(
        "hand-tuned",
        "CONN_MAX_AGE=None, waitress threads=4 connection_limit=200 channel_timeout=3600 "
        "cleanup_interval=30 backlog=2048",
        "waitress",
        conn_max_age=None,
        waitress=(
            ("threads", "4"),
            ("connection_limit", "200"),
            ("channel_timeout", "3600"),
            ("cleanup_interval", "30"),
            ("backlog", "2048"),
        ),
    ),
    VersionSpec(
        "lagscope",
        "lagscope serve: database connections prewarmed, keep-alive safe",
        "lagscope",
        conn_max_age=None,
    ),
)

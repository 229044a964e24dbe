"""The diagnose settings table: every choice of a run, declared once.

Declared with :mod:`lagscope.settings_table`, so from these rows come the validation
(finite, in range, typed), the click options of ``lagscope diagnose`` (and so of
``manage.py lagscope diagnose``, which runs that command), the keywords of
:func:`lagscope.diagnose.run` / :func:`~lagscope.diagnose.make_options` and the table of
docs/diagnose.md. What the rows cannot hold is elsewhere, once: the request flags diagnose
shares with probe (``-H``, ``-4``, ``-6``, ``-k``, ``--resolve``: :mod:`lagscope.probe.flags`),
and ``--budget``, probe's :class:`~lagscope.gate.Gate` (the same gate on the
typical warm request).
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.settings_table import SettingsError, markdown, setting, validate

__all__ = ["DiagnoseSettings", "docs_table"]


@dataclass(frozen=True)
class DiagnoseSettings:
    direct: str | None = setting(
        None,
        metavar="URL",
        help="The app itself, behind the proxy URL points at.",
        why="off unless given: only a proxied stack has a hop to compare",
    )
    database: str | None = setting(
        None,
        metavar="DSN",
        help="Also time connects and SELECT 1 straight to this PostgreSQL (never printed "
        "with its password).",
        why="off unless given: diagnose does not guess where the database is",
    )
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
    quick: bool = setting(
        False,
        help="Fewer requests per rung (about 2 s in all on a healthy app).",
        why="the full ladder's series give medians with tight intervals",
    )
    allow_load: bool = setting(
        False,
        help="Allow concurrent requests (the burst and the concurrency ladder) to a host that "
        "is not loopback.",
        why="concurrent requests to someone else's server are load; off unless asked for",
    )
    browser: bool = setting(
        False,
        help="Also load URL in a real browser already on this machine (the browser extra): "
        "a cold load, a reload, connections opened.",
        why="off unless asked for: a browser takes seconds to start",
    )
    browser_path: str | None = setting(
        None,
        metavar="PATH",
        help="The Chromium-based browser to drive with --browser.",
        shown="Chromium/Chrome on PATH, or Chrome/Edge on Windows and macOS",
        why="the browser the user already has, never a downloaded one",
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
        if not self.browser and (self.browser_path is not None or self.browser_idle_s is not None):
            raise SettingsError("--browser-path and --browser-idle need --browser")


def docs_table() -> str:
    """The settings table of docs/diagnose.md: the rows, then ``--budget`` (probe's gate)."""
    from lagscope.gate import Gate

    return markdown(DiagnoseSettings, Gate)

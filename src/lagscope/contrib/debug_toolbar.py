"""``LagscopePanel`` for django-debug-toolbar (``pip install 'lagscope[debug-toolbar]'``).

Add it to the toolbar's panels, with lagscope's middleware first in MIDDLEWARE::

    DEBUG_TOOLBAR_PANELS = [*debug_toolbar.settings.PANELS_DEFAULTS,
                            "lagscope.contrib.debug_toolbar.LagscopePanel"]

For the request it shows lagscope's timing record (total so far, view, template, db with
statement shapes, db connect, pool checkouts, queue), whether the client connection was new
or reused, the worker thread, and which lagscope system checks fire for the current
settings. The record is the one the middleware is filling (its context variable), read
when the toolbar finishes, which is just before the middleware adds the header; ``total``
is therefore up to that moment. Stats are plain JSON data, so the toolbar's history works.
"""

from __future__ import annotations

import copy
from typing import Any

from debug_toolbar.panels import Panel
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from lagscope.django import db
from lagscope.instrument.disclosure import Disclosure
from lagscope.instrument.record import build_metrics

__all__ = ["LagscopePanel"]


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} ms"


def _fired_checks() -> list[dict[str, str]]:
    from lagscope.django.checks import ALL_CHECKS

    out = []
    for check in ALL_CHECKS:
        for message in check(None):
            out.append(
                {
                    "id": str(message.id),
                    "level": message.level_tag if hasattr(message, "level_tag") else "",
                    "msg": str(message.msg),
                    "hint": str(message.hint or ""),
                }
            )
    return out


class LagscopePanel(Panel):
    """Where this request's milliseconds went, as lagscope measured them."""

    title = "lagscope"
    is_async = True
    clock = staticmethod(db.clock)

    # The toolbar's Panel is untyped; these two calls are the whole contract used.
    def stats(self) -> dict[str, Any]:
        """What :meth:`generate_stats` recorded for the request (plain JSON data)."""
        stats: dict[str, Any] = self.get_stats()  # type: ignore[no-untyped-call]
        return stats

    def _record(self, stats: dict[str, Any]) -> None:
        self.record_stats(stats)  # type: ignore[no-untyped-call]

    @property
    def nav_subtitle(self) -> str:
        stats = self.stats()
        if not stats.get("active"):
            return "middleware not active"
        parts = [f"{stats['total_ms']:.1f} ms"]
        if stats.get("connection"):
            parts.append(f"conn {stats['connection']}")
        if stats.get("dbconn_ms") is not None:
            parts.append(f"db connect {stats['dbconn_ms']:.1f} ms")
        return ", ".join(parts)

    def generate_stats(self, request: Any, response: Any) -> None:
        timing = db.current.get()
        checks = _fired_checks()
        if timing is None:
            self._record({"active": False, "checks": checks})
            return
        snapshot = copy.copy(timing)
        if snapshot.end_s is None:
            snapshot.end_s = self.clock()
        metrics = [
            {"name": m.name, "dur_ms": m.dur_ms, "desc": m.desc}
            for m in build_metrics(snapshot, Disclosure.FULL)
        ]
        first = snapshot.first_on_connection
        self._record(
            {
                "active": True,
                "metrics": metrics,
                "total_ms": (snapshot.total_s() or 0.0) * 1e3,
                "dbconn_ms": snapshot.dbconn_s * 1e3 if snapshot.dbconn_count else None,
                "connection": None if first is None else ("new" if first else "reused"),
                "thread": snapshot.thread,
                "checks": checks,
            }
        )

    @property
    def content(self) -> SafeString:
        stats = self.stats()
        parts = []
        if not stats.get("active"):
            parts.append(
                format_html(
                    "<p>{}</p>",
                    "lagscope's middleware did not time this request: put "
                    "lagscope.django.middleware.ServerTimingMiddleware first in MIDDLEWARE "
                    "(and check LAGSCOPE['ENABLED'] and who is trusted).",
                )
            )
        else:
            connection = stats.get("connection") or "unknown (the server gave no client port)"
            parts.append(
                format_html(
                    "<p>Client connection: <strong>{}</strong>. "
                    "Worker thread: <code>{}</code>.</p>",
                    connection,
                    stats.get("thread") or "",
                )
            )
            rows = format_html_join(
                "",
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        m["name"],
                        "" if m["dur_ms"] is None else f"{m['dur_ms']:.3f} ms",
                        m["desc"] or "",
                    )
                    for m in stats["metrics"]
                ),
            )
            parts.append(
                format_html(
                    "<table><thead><tr><th>metric</th><th>duration</th><th>detail</th></tr>"
                    "</thead><tbody>{}</tbody></table>",
                    rows,
                )
            )
        checks = stats.get("checks") or []
        if checks:
            rows = format_html_join(
                "",
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((c["id"], c["level"], c["msg"], c["hint"]) for c in checks),
            )
            parts.append(
                format_html(
                    "<h4>lagscope checks that fire for these settings</h4><table><thead><tr>"
                    "<th>id</th><th>level</th><th>message</th><th>hint</th></tr></thead>"
                    "<tbody>{}</tbody></table>",
                    rows,
                )
            )
        else:
            parts.append(format_html("<p>{}</p>", "No lagscope check fires for these settings."))
        return SafeString("".join(parts))

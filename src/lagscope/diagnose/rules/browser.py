"""The browser's own view (``--browser``): ``page-new-connections``. Pure.

A real browser loading the page cold opens a connection for the document, then up to six
per host for its assets over HTTP/1.1, and every new one pays whatever a new connection
costs here. :func:`lagscope.browser.model.setup_ms` prices what they added to the load;
:func:`browser_setup` gives ``connection-setup-tax`` and ``localhost-fallback`` the same
figures as the browser paid them.
"""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.browser.model import PageLoad, Setup, setup_ms
from lagscope.diagnose.evidence import Evidence
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import make_finding, median
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["browser_connect_ms", "browser_figures", "browser_setup", "page_new_connections"]


def browser_setup(ev: Evidence) -> tuple[PageLoad, Setup] | None:
    """The cold load and what its new connections added to it, when a browser ran."""
    run = ev.browser
    cold = run.load("cold") if run is not None else None
    if run is None or cold is None:
        return None
    return cold, setup_ms(cold, run.loads)


def browser_connect_ms(ev: Evidence) -> float | None:
    """The median TCP connect of the cold load's new connections (Chrome's own connect,
    address fallback included), when a browser ran and showed one."""
    got = browser_setup(ev)
    if got is None:
        return None
    connects = [r.connect_ms for r in got[0].resources if r.new_connection and r.connect_ms]
    return median(connects) if connects else None


def browser_figures(ev: Evidence) -> list[Figure]:
    """The browser's side of a per-connection finding: connections opened, what each paid."""
    got = browser_setup(ev)
    if got is None or not got[1].connections:
        return []
    cold, setup = got
    return [
        Figure("browser_connections_opened", cold.new_connections),
        Figure("browser_per_connection_ms", setup.per_connection_ms, "ms"),
        Figure("browser_setup_added_ms", setup.added_ms, "ms"),
    ]


def page_new_connections(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    run = ev.browser
    got = browser_setup(ev)
    if run is None or got is None:
        return None
    cold, setup = got
    if setup.added_ms < t.page_setup_ms:
        return None
    evidence = [
        Figure("browser", run.browser),
        Figure("cold_load_ms", cold.load_ms, "ms"),
        Figure("requests", len(cold.resources)),
        Figure("connections_opened", cold.new_connections),
        Figure("per_connection_setup_ms", setup.per_connection_ms, "ms"),
        Figure("rounds_of_setup", setup.rounds),
        Figure("setup_added_ms", setup.added_ms, "ms"),
        Figure("protocol", ", ".join(sorted({r.protocol for r in cold.resources if r.protocol}))),
    ]
    later = ""
    for load in run.loads[1:]:
        evidence.append(Figure(f"{load.label.replace(' ', '_')}_load_ms", load.load_ms, "ms"))
        evidence.append(
            Figure(f"{load.label.replace(' ', '_')}_connections_opened", load.new_connections)
        )
        later += (
            f" The {load.label} took {load.load_ms:.0f} ms and opened "
            f"{load.new_connections} new connection{'s' if load.new_connections != 1 else ''}."
        )
    if run.idle_rule:
        later += f" ({run.idle_rule}.)"
    rounds = "one round" if setup.rounds == 1 else f"{setup.rounds} rounds"
    return make_finding(
        ev,
        t,
        "page-new-connections",
        f"Loading the page cold opened {cold.new_connections} connections, each paying "
        "the per-connection setup",
        setup.added_ms,
        "every cold page load",
        evidence,
        (
            "Make new connections cheap: the connection-setup-tax fixes apply (an exclusion "
            "for the app and loopback in the security software, listening on every address "
            "the name resolves to).",
            "Serve over HTTP/2, which carries a whole page on one connection per origin "
            "(browsers speak it only over TLS: `lagscope serve --https`, or nginx-config "
            "--https in front), so a cold page pays one setup instead of one per round.",
            "Keep the connections the browser has: keep-alive with Content-Length on every "
            "response (`lagscope serve` does both); the browser then keeps them for 300 s.",
            "Fewer requests on the first view: bundle stylesheets and scripts, inline small "
            "images.",
        ),
        f"Loading {cold.url} cold, {run.browser} opened {cold.new_connections} connections "
        f"for {len(cold.resources)} requests, and each new one spent "
        f"~{setup.per_connection_ms:.0f} ms on setup before its first byte. Setups that ran in "
        f"parallel were paid side by side, so in {rounds} they added "
        f"{setup.added_ms:.0f} ms to a {cold.load_ms:.0f} ms load." + later,
    )

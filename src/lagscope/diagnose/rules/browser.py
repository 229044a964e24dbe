"""The browser's own view (``--browser``): ``page-new-connections``. Pure.

A real browser loading the page cold opens a connection for the document, then up to six
per host for its assets over HTTP/1.1, and every new one pays whatever a new connection
costs here. :func:`lagscope.browser.model.setup_ms` prices what they added to the load;
:func:`browser_setup` gives ``connection-setup-tax`` and ``localhost-fallback`` the same
figures as the browser paid them.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from lagscope.browser.model import PageLoad, Setup, setup_ms
from lagscope.diagnose.evidence import Evidence
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import make_finding, median
from lagscope.diagnose.thresholds import Thresholds

__all__ = [
    "browser_connect_ms",
    "browser_figures",
    "browser_setup",
    "http2_advice",
    "page_new_connections",
]


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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def http2_advice(ev: Evidence, cold: PageLoad, setup: Setup) -> str | None:
    """The HTTP/2 fix, only when it would remove connections this cold load opened: more
    than one new HTTP/1.x connection to one origin (HTTP/2 carries a whole origin on one).
    None when the page already came over HTTP/2 or QUIC, or each origin had one connection.
    Which step it takes depends on the URL's scheme and what the server offers (ALPN)."""
    per_origin: dict[str, int] = {}
    for r in cold.resources:
        if r.new_connection and r.protocol.startswith("http/1"):
            per_origin[_origin(r.url)] = per_origin.get(_origin(r.url), 0) + 1
    extra = sum(n - 1 for n in per_origin.values())
    if extra <= 0:
        return _h2_several(cold)
    saved_ms = max(0.0, setup.added_ms - setup.per_connection_ms)
    gain = (
        f"HTTP/2 carries a whole origin on one connection: this load's {extra + len(per_origin)} "
        f"HTTP/1.1 connections would be {len(per_origin)}, and about {saved_ms:.0f} ms of "
        "setup (every round after the first) would go"
    )
    if urlsplit(cold.url).scheme != "https":
        how = (
            "browsers speak it only over TLS: serve https:// with `lagscope serve --https` "
            "(granian), or `lagscope nginx-config --https` in front of waitress (docs/https.md)"
        )
    elif ev.alpn == "h2":
        how = (
            "the server offers h2 (ALPN), yet the browser spoke HTTP/1.1: something between "
            "them (a proxy, or security software inspecting TLS) takes it away"
        )
    else:
        how = (
            "the server offers only HTTP/1.1 over TLS: turn HTTP/2 on (`lagscope serve "
            "--https` on granian; `http2 on` in nginx, `lagscope nginx-config --https`)"
        )
    return f"Serve over HTTP/2. {gain}; {how}."


def _h2_several(cold: PageLoad) -> str | None:
    """Why a load that already came over HTTP/2 still opened more than one connection to
    an origin (None when it did not): what is left to do is not HTTP/2."""
    per_origin: dict[str, int] = {}
    for r in cold.resources:
        if r.new_connection and r.protocol in ("h2", "h3"):
            per_origin[_origin(r.url)] = per_origin.get(_origin(r.url), 0) + 1
    several = {origin: n for origin, n in per_origin.items() if n > 1}
    if not several:
        return None
    origin, n = max(several.items(), key=lambda item: item[1])
    return (
        f"Already HTTP/2, yet this load opened {n} connections to {origin}: a browser keeps "
        "requests sent without credentials (web fonts, `crossorigin` scripts and styles, "
        "`fetch` with `credentials: 'omit'`) on a connection of their own, apart from the "
        "page's; give them the page's credentials mode (or none of them need a second "
        "connection) so one connection carries the origin."
    )


# Earlier findings that say new connections cost something here, by the ladder's own
# experiments: the browser's figure is then a cost, not the load of a busy machine.
_CORROBORATING = ("connection-setup-tax", "localhost-fallback", "slow-name-resolution")


def page_new_connections(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
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
    # A busy machine slows a burst of new connections' first requests too; only when the
    # ladder's own new-versus-reused experiments found a per-connection cost is this one.
    corroborated = ev.coldwarm is None or any(
        f.id in _CORROBORATING and f.severity != "info" for f in found
    )
    if not corroborated:
        later += (
            " The ladder's own new connections cost nothing beyond noise, so this is more "
            "likely the machine's load or the server's answer to a burst than a tax."
        )
    return make_finding(
        ev,
        t,
        "page-new-connections",
        f"Loading the page cold opened {cold.new_connections} "
        f"connection{'s' if cold.new_connections != 1 else ''}, each paying the "
        "per-connection setup",
        setup.added_ms,
        "every cold page load",
        evidence,
        tuple(
            fix
            for fix in (
                "Make new connections cheap: the connection-setup-tax fixes apply (an exclusion "
                "for the app and loopback in the security software, listening on every address "
                "the name resolves to).",
                http2_advice(ev, cold, setup),
                "Keep the connections the browser has: keep-alive with Content-Length on every "
                "response (`lagscope serve` does both); the browser then keeps them for 300 s.",
                "Fewer requests on the first view: bundle stylesheets and scripts, inline small "
                "images.",
            )
            if fix is not None
        ),
        f"Loading {cold.url} cold, {run.browser} opened {cold.new_connections} connections "
        f"for {len(cold.resources)} requests, and each new one spent "
        f"~{setup.per_connection_ms:.0f} ms on setup before its first byte. Setups that ran in "
        f"parallel were paid side by side, so in {rounds} they added "
        f"{setup.added_ms:.0f} ms to a {cold.load_ms:.0f} ms load." + later,
        severity=None if corroborated else "info",
    )

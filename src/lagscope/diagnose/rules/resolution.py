"""Name resolution and address fallback: ``slow-name-resolution``, ``localhost-fallback``.
Pure.

Both are costs a new connection pays before its TCP handshake with the answering address,
so ``connection-setup-tax`` prices only what is left after them.
"""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import Evidence, figure, summary_of
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.browser import browser_connect_ms
from lagscope.diagnose.rules.common import make_finding, median, severity_for
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["fallback_cost_ms", "localhost_fallback", "resolve_cost_ms", "slow_name_resolution"]


def fallback_cost_ms(ev: Evidence) -> float:
    """What the addresses that failed before the answering one cost each new connection:
    the time of those failed attempts, as a client that tries them in order pays it (an
    address that drops packets: its whole connect timeout, at least what was waited here)."""
    res = ev.resolution
    if res is None or not res.addresses:
        return 0.0
    first_ok = next((i for i, a in enumerate(res.addresses) if a.connects), None)
    if not first_ok:
        return 0.0
    return sum(median(a.connect_ms) for a in res.addresses[:first_ok])


def resolve_cost_ms(ev: Evidence) -> float:
    """One name lookup, as the run measured it: the resolution rung's lookups and every new
    connection's own (lagscope resolves per connection, as Python clients do)."""
    res = ev.resolution
    samples = list(res.resolve_ms) if res is not None and res.source != "pinned" else []
    if ev.coldwarm is not None:
        samples += [r.resolve_ms for r in ev.coldwarm.cold if r.resolve_ms is not None]
    return median(samples)


def slow_name_resolution(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    res = ev.resolution
    if res is None or not res.is_name or res.source == "pinned":
        return None
    cost = resolve_cost_ms(ev)
    if cost < t.slow_resolve_ms:
        return None
    cold = ev.coldwarm.cold if ev.coldwarm is not None else ()
    answer = res.addresses[0].address if res.addresses else "its address"
    connect = summary_of(r.connect_ms for r in cold)
    return make_finding(
        ev,
        t,
        "slow-name-resolution",
        f"Looking up {res.host} takes {cost:.0f} ms",
        cost,
        "first request per connection",
        [
            figure("resolve_ms", summary_of(res.resolve_ms)),
            figure("cold_resolve_ms", summary_of(r.resolve_ms for r in cold)),
            figure("cold_connect_ms", connect),
            Figure("python_clients_pay", "every new connection"),
            Figure("browsers_pay", "about once a minute (their DNS cache)"),
        ],
        [
            f"Add the name to the hosts file (`{answer} {res.host}` in /etc/hosts or "
            r"C:\Windows\System32\drivers\etc\hosts).",
            f"Or use the address in URLs and DATABASES HOST ({answer} instead of {res.host}).",
            "Or fix the resolver: the DNS server in resolv.conf / the adapter settings "
            "answers slowly; a local caching resolver hides it after the first lookup.",
        ],
        f"Resolving {res.host} took {cost:.0f} ms (p50) before any connect started; the "
        f"TCP connect itself took {connect.p50_ms if connect else 0.0:.2f} ms. Clients "
        "that resolve per connection (requests, httpx, urllib, psycopg) pay it on every "
        "new connection; browsers cache answers for about a minute.",
        confirm=(ev.command or f"lagscope diagnose {ev.url}") + f" --resolve {res.host}:{answer}",
    )


def localhost_fallback(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    res = ev.resolution
    if res is None:
        return None
    first_ok = next((i for i, a in enumerate(res.addresses) if a.connects), None)
    fix = [
        "Listen on both loopback addresses: `lagscope serve` serves localhost on 127.0.0.1 "
        "and ::1 (waitress: listen='127.0.0.1:8000 [::1]:8000').",
        "Or use 127.0.0.1 in URLs and in DATABASES HOST instead of localhost.",
    ]
    if first_ok:
        failed = res.addresses[:first_ok]
        cost = fallback_cost_ms(ev)
        drops = any("timeout" in a.outcomes for a in failed)
        evidence = [
            Figure(f"{a.address} ({a.family})", "/".join(sorted(set(a.outcomes)))) for a in failed
        ]
        evidence += [
            Figure("sequential_client_ms", round(cost, 3), "ms"),
            figure("happy_eyeballs_connect_ms", summary_of(res.hostname_connect_ms)),
            Figure("answering_address", res.addresses[first_ok].address),
            Figure("chrome_waits_ms", t.chrome_fallback_ms),
            Figure("windows_sequential_client_ms", t.windows_refused_ms),
        ]
        browser_ms = browser_connect_ms(ev)
        in_browser = ""
        if browser_ms is not None and browser_ms >= t.browser_fallback_ms:
            # The browser's own connects show Chrome waiting out its fallback timer.
            evidence.append(Figure("browser_connect_ms", round(browser_ms, 3), "ms"))
            cost = max(cost, browser_ms)
            in_browser = f" The browser itself paid {browser_ms:.0f} ms per new connection."
        if drops:
            paid = (
                f"A client that tries addresses in order waits its whole connect timeout "
                f"there: at least {cost:.0f} ms here (lagscope stopped waiting then)"
            )
        else:
            paid = f"Here a client that tries addresses in order pays {cost:.1f} ms"
        return make_finding(
            ev,
            t,
            "localhost-fallback",
            f"{res.host} is tried first at an address where nothing answers",
            cost,
            "first request per connection",
            evidence,
            fix,
            f"Every new connection first tries {failed[0].address}, which "
            f"{'drops the connect' if drops else 'fails'}, then falls back to "
            f"{res.addresses[first_ok].address}. {paid}; Chrome waits "
            f"{t.chrome_fallback_ms:g} ms before falling back, and sequential clients on "
            f"Windows ~{t.windows_refused_ms:g} ms even when the address refuses. The rest of "
            f"this run connected to {res.addresses[first_ok].address} directly." + in_browser,
            severity=severity_for(cost, t),
        )
    if res.unlistened and res.is_name:
        return make_finding(
            ev,
            t,
            "localhost-fallback",
            f"{res.host} answers on one loopback address only",
            0.0,
            "nothing measured here",
            [Figure("not_answering", ", ".join(res.unlistened))],
            fix,
            "This machine resolves the name to the address that answers, so nothing is lost "
            f"here; where it resolves to {res.unlistened[0]} first (Windows does), Chrome "
            f"pays {t.chrome_fallback_ms:g} ms and sequential clients ~{t.windows_refused_ms:g} "
            "ms per new connection.",
            severity="info",
        )
    return None

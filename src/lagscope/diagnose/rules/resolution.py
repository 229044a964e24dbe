"""Name resolution and address fallback: ``localhost-fallback``. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
    figure,
    summary_of,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    make_finding,
    median,
    severity_for,
)
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["fallback_cost_ms", "localhost_fallback"]


def fallback_cost_ms(ev: Evidence) -> float:
    """What the addresses that failed before the answering one cost each new connection:
    the time of those failed attempts, as a client that tries them in order pays it."""
    res = ev.resolution
    if res is None or not res.addresses:
        return 0.0
    first_ok = next((i for i, a in enumerate(res.addresses) if a.connects), None)
    if not first_ok:
        return 0.0
    return sum(median(a.connect_ms) for a in res.addresses[:first_ok])


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
        evidence = [
            Figure(f"{a.address} ({a.family})", "/".join(sorted(set(a.outcomes)))) for a in failed
        ]
        evidence += [
            figure("hostname_connect_ms", summary_of(res.hostname_connect_ms)),
            Figure("answering_address", res.addresses[first_ok].address),
            Figure("chrome_waits_ms", t.chrome_fallback_ms),
            Figure("windows_sequential_client_ms", t.windows_refused_ms),
        ]
        return make_finding(
            ev,
            t,
            "localhost-fallback",
            f"{res.host} is tried first at an address where nothing answers",
            cost,
            "first request per connection",
            evidence,
            fix,
            f"Every new connection first tries {failed[0].address}, which fails, then falls "
            f"back. Here that costs {cost:.1f} ms; Chrome waits {t.chrome_fallback_ms:g} ms "
            f"before falling back and sequential clients on Windows ~{t.windows_refused_ms:g} ms.",
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
            [Figure("refusing", ", ".join(res.unlistened))],
            fix,
            "This machine resolves the name to the address that answers, so nothing is lost "
            f"here; where it resolves to {res.unlistened[0]} first (Windows does), Chrome "
            f"pays {t.chrome_fallback_ms:g} ms and sequential clients ~{t.windows_refused_ms:g} "
            "ms per new connection.",
            severity="info",
        )
    return None

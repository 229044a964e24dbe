"""The one table of diagnosis thresholds: every number a rule compares against.

Each field carries its unit in its name, and its metadata says why the value is what it is
and where it comes from (Lighthouse, Sentry, Chrome, the kernel), so the docs table in
docs/diagnose.md is generated from here and cannot drift. Rules receive a
:class:`Thresholds` value as a parameter; nothing else holds a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds", "docs_table"]


def _t(default: Any, why: str, source: str = "") -> Any:
    return field(default=default, metadata={"why": why, "source": source})


@dataclass(frozen=True)
class Thresholds:
    # --- severity ------------------------------------------------------------------------
    critical_ms: float = _t(
        100.0,
        "a finding costing this much per affected request is critical",
        "Lighthouse server-response-time: 'aim for 100 ms'",
    )
    # --- connection setup ----------------------------------------------------------------
    setup_tax_ms: float = _t(
        20.0,
        "first request on a new connection slower than a reused one by at least this "
        "(beyond noise) is a per-connection tax; loopback setup itself costs < 1 ms",
        "baseline: loopback connect 0.03-0.04 ms",
    )
    fallback_ms: float = _t(
        1.0,
        "an address that failed before the one that answered costs at least this per new "
        "connection here (Chrome waits 300 ms, Windows sequential clients ~2 s)",
        "Chrome kIPv6FallbackTime = 300 ms; cpython #106130",
    )
    chrome_fallback_ms: float = _t(
        300.0, "what Chrome waits before trying the next address family", "Chrome"
    )
    windows_refused_ms: float = _t(
        2000.0,
        "what a refused loopback connect costs a sequential client on Windows (SYN retries)",
        "cpython #106130, pyzotero #374",
    )
    slow_resolve_ms: float = _t(
        20.0,
        "a name lookup slower than this is slow: a hosts-file answer takes < 1 ms, a "
        "resolver on the local network a few ms",
        "glibc sends A and AAAA in parallel: one slow answer costs its whole delay",
    )
    # --- time outside the app ---------------------------------------------------------------
    outside_app_ms: float = _t(
        20.0,
        "time to first byte outside the app's own Server-Timing total, on reused "
        "connections, beyond proxy_floor_ms: something between client and app holds every "
        "response (per-response inspection, a slow local proxy)",
    )
    unexplained_ms: float = _t(
        20.0,
        "time in one phase of a request that no finding explains, above which it is named "
        "with the phase it was measured in",
    )
    # --- database -------------------------------------------------------------------------
    db_per_request_share: float = _t(
        0.8,
        "share of steady-state requests that open a database connection for it to be 'per request'",
    )
    db_connect_slow_ms: float = _t(
        50.0,
        "one database connect slower than this is slow: local PostgreSQL takes 5-12 ms "
        "(trust / scram), a hosted one with TLS ~70 ms",
        "baseline.md; psycopg2 #1049 (GSS 111 ms vs 3.2 ms)",
    )
    gss_saving_ms: float = _t(
        20.0,
        "a connect faster by this much with gssencmode=disable means GSS negotiation is the cost",
        "psycopg2 #1049",
    )
    # --- warm-up ---------------------------------------------------------------------------
    warmup_excess_ms: float = _t(
        25.0,
        "an early request slower than the steady state by this much (and by 5x the "
        "steady state's spread) is a warm-up request",
    )
    warmup_connect_ms: float = _t(
        3.0,
        "an early request that opened a database connection (when later ones do not) is "
        "warm-up when it cost at least this: a local PostgreSQL connect is 4.5-12 ms, an "
        "SQLite open ~1 ms",
        "baseline.md",
    )
    warmup_recurring_share: float = _t(
        0.5,
        "share of the later new connections that pay the early requests' extra cost for it "
        "to be a per-connection cost, not warm-up (warm-up is paid once per worker)",
    )
    warmup_min_requests: int = _t(
        2,
        "slow early requests needed, each on a different worker when the server names "
        "its threads, before it is called per-worker warm-up",
    )
    # --- small writes ----------------------------------------------------------------------
    delayed_ack_timers_ms: tuple[float, ...] = _t(
        (40.0, 200.0),
        "delayed-ACK timers a small-write stall clusters at: Linux 40 ms, Windows 200 ms",
        "RFC 1122 4.2.3.2; Linux TCP_DELACK_MIN; cpython #108736",
    )
    delayed_ack_tolerance: float = _t(
        0.35, "relative window around a timer value that counts as 'near' it"
    )
    stall_share: float = _t(0.6, "share of reused-connection requests that must stall")
    # --- queueing ----------------------------------------------------------------------------
    queue_ms: float = _t(
        40.0,
        "time waiting for a worker, at a concurrency a browser reaches (<= 4 clients), "
        "above which requests queue",
    )
    queue_ceiling: float = _t(
        1.5,
        "a wait longer than this many times (clients - 1) service times is not a queue for "
        "a worker (even one worker serves every other client first) but a starved CPU",
    )
    queue_max_clients: int = _t(
        4, "queueing is judged up to this many concurrent clients (a browser opens 6)"
    )
    # --- the app --------------------------------------------------------------------------------
    slow_app_ms: float = _t(
        100.0,
        "the app's own time per request above which it is slow",
        "Lighthouse server-response-time: aim for 100 ms, fails at 600 ms",
    )
    slow_app_critical_ms: float = _t(
        600.0, "the app's own time that is critical", "Lighthouse server-response-time"
    )
    repeated_query_count: int = _t(
        10,
        "one statement shape repeated this often in one request is an N+1",
        "Sentry N+1 detector counts >= 5 repeats; 10 keeps loops over small sets quiet",
    )
    many_queries_count: int = _t(
        50, "this many queries of different shapes in one request is worth a look (info)"
    )
    # --- proxies ---------------------------------------------------------------------------------
    proxy_hop_ms: float = _t(
        20.0, "a reverse-proxy hop costing more than this on a reused connection is slow"
    )
    proxy_floor_ms: float = _t(
        2.0,
        "what a healthy local proxy hop or loopback exchange costs at most; time outside "
        "the app beyond it is the hop's",
    )
    # --- HTTP hygiene ---------------------------------------------------------------------------
    compress_min_saving_bytes: int = _t(
        1400, "compression saving below this is ignored", "Lighthouse uses-text-compression"
    )
    compress_min_saving_share: float = _t(
        0.05, "compression saving below this share is ignored", "Lighthouse"
    )
    large_payload_bytes: int = _t(
        300_000, "a body above this is large", "Sentry large HTTP payload: > 300 KB"
    )
    large_payload_ms: float = _t(
        100.0,
        "a large body whose transfer takes longer than this is a warning",
        "Sentry large HTTP payload: > 100 ms",
    )
    redirect_ms: float = _t(
        0.0,
        "every redirect costs a round trip; any redirect of the measured URL is reported",
        "Lighthouse redirects",
    )


DEFAULT_THRESHOLDS = Thresholds()


def docs_table(t: Thresholds = DEFAULT_THRESHOLDS) -> str:
    """The thresholds as a Markdown table (docs/diagnose.md embeds it)."""
    lines = ["| threshold | value | why | source |", "|---|---|---|---|"]
    for f in fields(t):
        value = getattr(t, f.name)
        shown = ", ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"
        lines.append(f"| `{f.name}` | {shown} | {f.metadata['why']} | {f.metadata['source']} |")
    return "\n".join(lines) + "\n"

"""The one table of diagnosis thresholds: every number a rule compares against.

A row of the one settings mechanism (:func:`lagscope.settings_table.setting`, off the command
line) per threshold: its unit in its name, what it means (``help``) and where the value comes
from (``why``: Lighthouse, Sentry, Chrome, the kernel), so the docs table in
docs/diagnose.md is generated from here (:func:`lagscope.settings_table.markdown`) and cannot
drift. Rules receive a :class:`Thresholds` value as a parameter; nothing else holds a
threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from lagscope.settings_table import markdown, setting

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds", "docs_table"]


@dataclass(frozen=True)
class Thresholds:
    # --- severity ------------------------------------------------------------------------
    critical_ms: float = setting(
        100.0,
        help="a finding costing this much per affected request is critical",
        why="Lighthouse server-response-time: 'aim for 100 ms'",
        cli=False,
    )
    min_steady_requests: int = setting(
        3,
        help=(
            "fewest steady-state (or reused-connection) requests a rule judges a share or a "
            "median from"
        ),
        why=(
            "the smallest series with a middle apart from its ends: fewer would judge a share or "
            "a median from one or two samples (rule of thumb)"
        ),
        cli=False,
    )
    min_warm_requests: int = setting(
        4,
        help=(
            "fewest reused-connection requests the outside-time and small-write rules judge "
            "from (a quartile needs four)"
        ),
        why="a quartile needs four values; with fewer they are the extremes themselves",
        cli=False,
    )
    spread_floor_ms: float = setting(
        0.5,
        help=(
            "the smallest spread (interquartile range) of a series of timings: loopback noise, so "
            "a perfectly steady series does not make every excess look significant"
        ),
        why="baseline: loopback exchanges vary by a few tenths of a millisecond",
        cli=False,
    )
    # --- connection setup ----------------------------------------------------------------
    setup_tax_ms: float = setting(
        10.0,
        help=(
            "first request on a new connection slower than a reused one by at least this (beyond "
            "noise) is a per-connection tax; loopback setup itself costs < 1 ms"
        ),
        why=(
            "rule of thumb: below a Windows timer tick (15.6 ms), the smallest delay a security "
            "product's timer adds, and well above what a new loopback connection costs a healthy "
            "stack (tests/diagnose/test_healthy.py holds it on four)"
        ),
        cli=False,
    )
    setup_absorbed_share: float = setting(
        0.5,
        help=(
            "a connection left idle after its request's first byte that waits at most this "
            "share less than a fresh one has absorbed the setup, even where the two series' "
            "intervals overlap"
        ),
        why=(
            "a median that halves is not noise: a stray slow sample on a busy machine widens "
            "an interval of 6 samples, it does not move the median that far"
        ),
        cli=False,
    )
    intermittent_min_connections: int = setting(
        2,
        help=(
            "fewest new connections slower than every reused one (by setup_tax_ms and by "
            "intermittent_spread_factor x the reused spread) that make an intermittent "
            "per-connection tax, when the median new connection pays nothing"
        ),
        why=(
            "one slow connection is a load spike; two of the same size are a pattern (a "
            "security product that inspects only some connections, or every k-th one)"
        ),
        cli=False,
    )
    intermittent_tax_ms: float = setting(
        30.0,
        help=(
            "what the slow minority of new connections must pay (p50) to be an intermittent "
            "tax: a tax on every connection is named from setup_tax_ms on, one on a few must "
            "stand clear of a busy machine's spikes"
        ),
        why=(
            "measured here (docs/performance.md, bench_diagnose's new stacks): at load average "
            "8.5 on 2 vCPU, 2 of 15 new connections of the healthy demo app paid 11 ms alike; "
            "30 ms clears that with room, a rule of thumb beyond it"
        ),
        cli=False,
    )
    intermittent_min_share: float = setting(
        0.2,
        help=(
            "least share of the new connections that must pay an intermittent tax: a rarer "
            "slow connection cannot be told from a stack's occasional one"
        ),
        why=(
            "measured here (docs/performance.md, bench_diagnose's new stacks): behind nginx "
            "without upstream keep-alive, 2 of 12 new connections paid a second upstream tax; "
            "one connection in three or five is the pattern of a product that inspects some "
            "connections (a rule of thumb)"
        ),
        cli=False,
    )
    intermittent_spread_factor: float = setting(
        3.0,
        help=(
            "a new connection must be slower than the reused connections' median by this many "
            "times their spread (interquartile range) to count as taxed"
        ),
        why="rule of thumb: the warm-up rule's margin over noise (warmup_spread_factor) is wider",
        cli=False,
    )
    intermittent_cluster_ratio: float = setting(
        2.0,
        help=(
            "a slow new connection counts as taxed when it paid within this factor of what the "
            "slow ones typically (p50) paid, and those must be most of them: one tax paid "
            "again; load spikes on a busy machine vary far more"
        ),
        why="rule of thumb: a timer or an inspection step costs about the same every time",
        cli=False,
    )
    fallback_ms: float = setting(
        1.0,
        help=(
            "an address that failed before the one that answered costs at least this per new "
            "connection here (Chrome waits 300 ms, Windows sequential clients ~2 s)"
        ),
        why="Chrome kIPv6FallbackTime = 300 ms; cpython #106130",
        cli=False,
    )
    chrome_fallback_ms: float = setting(
        300.0,
        help="what Chrome waits before trying the next address family",
        why="Chrome",
        cli=False,
    )
    windows_refused_ms: float = setting(
        2000.0,
        help="what a refused loopback connect costs a sequential client on Windows (SYN retries)",
        why="cpython #106130, pyzotero #374",
        cli=False,
    )
    slow_resolve_ms: float = setting(
        20.0,
        help=(
            "a name lookup slower than this is slow: a hosts-file answer takes < 1 ms, a resolver "
            "on the local network a few ms"
        ),
        why="glibc sends A and AAAA in parallel: one slow answer costs its whole delay",
        cli=False,
    )
    # --- time outside the app ---------------------------------------------------------------
    outside_app_ms: float = setting(
        10.0,
        help=(
            "time to first byte outside the app's own Server-Timing total, on reused connections, "
            "beyond proxy_floor_ms: something between client and app holds every response "
            "(per-response inspection, a slow local proxy)"
        ),
        why=(
            "rule of thumb: the margin of the other per-request taxes (setup_tax_ms), far above a"
            " reused loopback exchange (< 1 ms)"
        ),
        cli=False,
    )
    loopback_transfer_mb_s: float = setting(
        200.0,
        help=(
            "the slowest a sized response body arrives over loopback on a healthy machine "
            "(MB/s); the time a body takes beyond its size at this rate is held by something "
            "between the client and the app (inspection of the response stream)"
        ),
        why=(
            "a rule of thumb from one check (2 vCPU, load average 7.5) not kept in a bench: a "
            "1-4 MB Django JSON body over waitress arrived at 300-700 MB/s (p50); a finding "
            "needs the lower quartile held too"
        ),
        cli=False,
    )
    unexplained_ms: float = setting(
        20.0,
        help=(
            "time in one phase of a request that no finding explains, above which it is named with "
            "the phase it was measured in"
        ),
        why=(
            "rule of thumb: the margin of the other per-request taxes; a smaller leftover is the "
            "jitter of a sum of phases"
        ),
        cli=False,
    )
    # --- the browser (--browser) ---------------------------------------------------------
    page_setup_ms: float = setting(
        20.0,
        help=(
            "a page load whose new connections added at least this to it (the longest setup "
            "of each group that ran in parallel) reports page-new-connections; a loopback "
            "connect costs < 1 ms"
        ),
        why="baseline: loopback connect 0.03-0.04 ms",
        cli=False,
    )
    browser_fallback_ms: float = setting(
        250.0,
        help=(
            "a browser connect to a name this slow where a refusing loopback address exists is "
            "Chrome waiting out its IPv6 fallback (a share of chrome_fallback_ms, for timer slack)"
        ),
        why="Chrome kIPv6FallbackTime = 300 ms",
        cli=False,
    )
    # --- database -------------------------------------------------------------------------
    db_per_request_share: float = setting(
        0.8,
        help=(
            "share of steady-state requests that open a database connection for it to be 'per "
            "request'"
        ),
        why=(
            "rule of thumb: most, not all: a few requests may land on a thread that kept its "
            "connection a while"
        ),
        cli=False,
    )
    db_connect_slow_ms: float = setting(
        50.0,
        help=(
            "one database connect slower than this is slow: local PostgreSQL takes 5-12 ms (trust "
            "/ scram), a hosted one with TLS ~70 ms"
        ),
        why="baseline.md; psycopg2 #1049 (GSS 111 ms vs 3.2 ms)",
        cli=False,
    )
    gss_saving_ms: float = setting(
        20.0,
        help=(
            "a connect faster by this much with gssencmode=disable means GSS negotiation is the "
            "cost"
        ),
        why="psycopg2 #1049",
        cli=False,
    )
    # --- warm-up ---------------------------------------------------------------------------
    warmup_excess_ms: float = setting(
        25.0,
        help=(
            "an early request slower than the steady state by this much (and by 5x the steady "
            "state's spread) is a warm-up request"
        ),
        why=(
            "rule of thumb: a little above the per-connection tax margin (setup_tax_ms), so that "
            "tax is not also called warm-up"
        ),
        cli=False,
    )
    warmup_connect_ms: float = setting(
        3.0,
        help=(
            "an early request that opened a database connection (when later ones do not) is "
            "warm-up when it cost at least this: a local PostgreSQL connect is 4.5-12 ms, an "
            "SQLite open ~1 ms"
        ),
        why="baseline.md",
        cli=False,
    )
    warmup_recurring_share: float = setting(
        0.5,
        help=(
            "share of the later new connections that pay the early requests' extra cost for it to "
            "be a per-connection cost, not warm-up (warm-up is paid once per worker)"
        ),
        why=(
            "rule of thumb: warm-up is paid once per worker, so later connections should almost "
            "never pay it; half or more is a per-connection cost"
        ),
        cli=False,
    )
    warmup_min_requests: int = setting(
        2,
        help=(
            "slow early requests needed, each on a different worker when the server names its "
            "threads, before it is called per-worker warm-up"
        ),
        why=(
            "one slow request alone cannot be told from a stray stall; two (on different workers)"
            " make a pattern"
        ),
        cli=False,
    )
    warmup_spread_factor: float = setting(
        5.0,
        help=(
            "an early request is warm-up only when its excess is also this many times the steady "
            "state's spread"
        ),
        why=(
            "rule of thumb: an excess this large against the steady state's own spread is not "
            "that spread's noise"
        ),
        cli=False,
    )
    warmup_base_share: float = setting(
        0.5,
        help="... and at least this share of the steady state's own time",
        why=(
            "rule of thumb: on a slow page the absolute margin is jitter; the excess must also be"
            " a real part of the request"
        ),
        cli=False,
    )
    warmup_steady_connect_share: float = setting(
        0.5,
        help=(
            "below this share of steady-state requests opening a database connection, early "
            "requests that open one are warm-up"
        ),
        why=(
            "rule of thumb: when most steady requests connect, connecting is per request (db-"
            "connect-per-request), not warm-up"
        ),
        cli=False,
    )
    warmup_noise_share: float = setting(
        0.5,
        help=(
            "slow requests on workers that had already served one (noise) may be at most this "
            "share of the first-per-worker slow ones for a per-worker warm-up pattern"
        ),
        why=(
            "rule of thumb: slow requests on warmed workers must be the exception, or the "
            "slowness is not tied to a worker's first request"
        ),
        cli=False,
    )
    warmup_steady_slow_share: float = setting(
        0.1,
        help=(
            "steady-state requests as slow as the early ones may be at most this share (at least "
            "one) for the early ones to be warm-up"
        ),
        why=(
            "rule of thumb: a steady state as slow as the early requests more than one time in "
            "ten means the slowness is not early"
        ),
        cli=False,
    )
    # --- small writes ----------------------------------------------------------------------
    delayed_ack_linux_ms: float = setting(
        40.0,
        help="the delayed-ACK timer a small-write stall clusters at on Linux",
        why="RFC 1122 4.2.3.2; Linux TCP_DELACK_MIN; cpython #108736",
        cli=False,
    )
    delayed_ack_windows_ms: float = setting(
        200.0,
        help="the delayed-ACK timer a small-write stall clusters at on Windows",
        why="RFC 1122 4.2.3.2; cpython #108736",
        cli=False,
    )
    delayed_ack_tolerance: float = setting(
        0.35,
        help="relative window around a timer value that counts as 'near' it",
        why=(
            "timers fire late on a busy machine and the stall adds to the request's own time; ±35"
            " % still keeps 40 ms and 200 ms apart"
        ),
        cli=False,
    )
    stall_max_body_bytes: int = setting(
        65_536,
        help=(
            "a response body at least this large leaves in full segments, which Nagle does "
            "not hold, and the client acknowledges two of them at once: its slow arrival is "
            "not a small-write stall"
        ),
        why="RFC 896 holds only segments smaller than the MSS; loopback's MSS is ~64 KB",
        cli=False,
    )
    stall_share: float = setting(
        0.6,
        help="share of reused-connection requests that must stall",
        why=(
            "rule of thumb: most, not all: a peer that acknowledges for its own reasons (Linux "
            "quick-ACK after idle) skips a stall"
        ),
        cli=False,
    )
    # --- queueing ----------------------------------------------------------------------------
    queue_ms: float = setting(
        40.0,
        help=(
            "time waiting for a worker, at a concurrency a browser reaches (<= 4 clients), above "
            "which requests queue"
        ),
        why=(
            "rule of thumb: twice the per-request tax margin, since concurrent requests add their"
            " own jitter"
        ),
        cli=False,
    )
    queue_ceiling: float = setting(
        1.5,
        help=(
            "a wait longer than this many times (ceil(clients / workers) - 1) service times is "
            "not a queue for a worker (workers: the threads the app names in Server-Timing, else "
            "one) but a starved CPU"
        ),
        why=(
            "with N clients on W workers a request waits for at most ceil(N / W) - 1 others; "
            "1.5 times that leaves room for jitter"
        ),
        cli=False,
    )
    queue_max_clients: int = setting(
        4,
        help="queueing is judged up to this many concurrent clients (a browser opens 6)",
        why="a browser opens up to 6 connections per host; 4 stays below it and below load testing",
        cli=False,
    )
    queue_base_share: float = setting(
        0.5,
        help="the queueing floor is at least this share of the time outside the app at one client",
        why=(
            "rule of thumb: the queueing floor may not fall below a real part of what one client "
            "already sees outside the app"
        ),
        cli=False,
    )
    queue_growth_share: float = setting(
        0.5,
        help=(
            "a wait that grew by less than this share of itself between concurrency levels is a "
            "queue for a worker, not a growing backlog"
        ),
        why=(
            "rule of thumb: a queue for a fixed pool grows by about one service time per client; "
            "a wait that doubles is a growing backlog"
        ),
        cli=False,
    )
    # --- the app --------------------------------------------------------------------------------
    slow_app_ms: float = setting(
        100.0,
        help="the app's own time per request above which it is slow",
        why="Lighthouse server-response-time: aim for 100 ms, fails at 600 ms",
        cli=False,
    )
    slow_app_critical_ms: float = setting(
        600.0,
        help="the app's own time that is critical",
        why="Lighthouse server-response-time",
        cli=False,
    )
    slow_app_part_share: float = setting(
        0.5,
        help=(
            "share of the app's own time in its database queries (Server-Timing db) or its "
            "template rendering (tpl) above which slow-app names that part as the phase"
        ),
        why="rule of thumb: most of the time, so the advice goes where the time is",
        cli=False,
    )
    repeated_query_count: int = setting(
        10,
        help="one statement shape repeated this often in one request is an N+1",
        why="Sentry N+1 detector counts >= 5 repeats; 10 keeps loops over small sets quiet",
        cli=False,
    )
    many_queries_count: int = setting(
        50,
        help="this many queries of different shapes in one request is worth a look (info)",
        why=(
            "rule of thumb: a request that needs this many different statements is worth a look, "
            "not a fault (info)"
        ),
        cli=False,
    )
    # --- proxies ---------------------------------------------------------------------------------
    proxy_hop_ms: float = setting(
        20.0,
        help="a reverse-proxy hop costing more than this on a reused connection is slow",
        why=(
            "rule of thumb: the margin of the other per-request taxes; a local proxy hop costs "
            "well under proxy_floor_ms"
        ),
        cli=False,
    )
    proxy_floor_ms: float = setting(
        2.0,
        help=(
            "what a healthy local proxy hop or loopback exchange costs at most; time outside the "
            "app beyond it is the hop's"
        ),
        why=(
            "a loopback exchange costs tenths of a millisecond (baseline.md); 2 ms leaves room "
            "for a busy machine"
        ),
        cli=False,
    )
    proxy_setup_share: float = setting(
        0.5,
        help=(
            "a proxy hop costing at least this share of a new direct connection's setup is the "
            "proxy opening a new upstream connection per request"
        ),
        why=(
            "rule of thumb: a hop that pays half a new connection's setup on every request is "
            "paying a setup"
        ),
        cli=False,
    )
    upstream_new_share: float = setting(
        0.8,
        help=(
            "share of reused client connections on which the app still saw a new connection "
            "for the proxy in between to be opening one per request"
        ),
        why="rule of thumb: most, not all: a proxy with a small keep-alive pool still reuses a few",
        cli=False,
    )
    # --- HTTP hygiene ---------------------------------------------------------------------------
    compress_min_saving_bytes: int = setting(
        1400,
        help="compression saving below this is ignored",
        why="Lighthouse uses-text-compression",
        cli=False,
    )
    compress_min_saving_share: float = setting(
        0.05, help="compression saving below this share is ignored", why="Lighthouse", cli=False
    )
    large_payload_bytes: int = setting(
        300_000,
        help="a body above this is large",
        why="Sentry large HTTP payload: > 300 KB",
        cli=False,
    )
    large_payload_ms: float = setting(
        100.0,
        help="a large body whose transfer takes longer than this is a warning",
        why="Sentry large HTTP payload: > 100 ms",
        cli=False,
    )
    redirect_ms: float = setting(
        0.0,
        help="every redirect costs a round trip; any redirect of the measured URL is reported",
        why="Lighthouse redirects",
        cli=False,
    )


DEFAULT_THRESHOLDS = Thresholds()


def docs_table() -> str:
    """The thresholds as a Markdown table (docs/diagnose.md embeds it)."""
    columns = (("threshold", "name"), ("value", "value"), ("why", "help"), ("source", "why"))
    return markdown(Thresholds, columns=columns) + "\n"

"""The isolation ladder: the experiments diagnose runs against a live stack, in order.

This is the diagnose module that does I/O, through the probe's measuring core
(:class:`lagscope.probe.runner.Client` and :func:`run_probe`) with the ``network`` and
``clock`` it is given. Every rung records its own figures; the evidence goes to the pure
rules (:mod:`lagscope.diagnose.rules`) and the budget (:mod:`lagscope.diagnose.budget`).

The order matters. The very first requests of the run are the ones a freshly started
server answers first, so they are kept (never thrown away as warm-up) and sent before
anything else touches the app: they are how per-worker warm-up is seen. One run deadline
bounds every rung; when it runs out the report says what was not measured.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import os
import re
import shlex
import socket
import statistics
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin

from lagscope import __version__, redact
from lagscope.addresses import format_host_port
from lagscope.browser.locate import BrowserChoice
from lagscope.browser.model import BrowserRun
from lagscope.diagnose.browser import BrowserAsk, check_browser, run_browser, rung_figures
from lagscope.diagnose.budget import budgets
from lagscope.diagnose.database import SessionCounter
from lagscope.diagnose.environment import describe, gather
from lagscope.diagnose.evidence import (
    AddressProbe,
    ColdWarm,
    DatabaseProbe,
    Evidence,
    Hygiene,
    ProfileProbe,
    QueueLevel,
    RedirectHop,
    Resolution,
    SetupSplit,
    Warmup,
    figure,
    metric_desc,
    metric_ms,
    outside_app_ms,
    summary_of,
    trusted_detail,
)
from lagscope.diagnose.model import (
    SCHEMA,
    DiagnoseReport,
    Environment,
    Figure,
    Rung,
    RungStatus,
)
from lagscope.diagnose.profiling import PROFILED_FINDINGS, REASON_LINES, UNTRUSTED_LINE
from lagscope.diagnose.rules import evaluate, fallback_cost_ms, setup_cost_ms
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds
from lagscope.dsn import Dsn
from lagscope.errors import ExitCode, LagscopeError
from lagscope.instrument.profile import (
    PROFILE_HEADER,
    REQUEST_VALUE,
    Profile,
    ProfileError,
    parse_header,
)
from lagscope.probe.model import ProbeReport, RequestRecord, dropped_note
from lagscope.probe.net import Clock, Network, SockAddr, SystemClock, SystemNetwork
from lagscope.probe.options import REMOTE_RATE_PER_S, ProbeOptions, is_loopback_host, parse_url
from lagscope.probe.runner import Client, Connection, RunDeadline, make_record, run_probe

__all__ = ["DiagnoseOptions", "Plan", "Progress", "diagnose"]

# (rung name, message): "start" / "done …" lines for the terminal.
Progress = Callable[[str, str], None]

_MAX_REDIRECTS = 5
_RESOLUTION_TIMEOUT_S = 3.0
# The other loopback address is only asked whether it answers at all.
_OTHER_LOOPBACK_TIMEOUT_S = 1.0
# The page the cheap request asks for: one no app serves, so it does (almost) no work.
_CHEAP_PATH = "/.lagscope-missing-page"
# The fewest samples per series that give a 95 % interval for the median.
_MIN_SAMPLES = 6
_REDIRECTS = (301, 302, 303, 307, 308)
# Profiled requests: the first may pay the server's one-time import of the profiler, so a
# second is sent on the same connection when the run has time; the second's profile is used.
_PROFILE_REQUESTS = 2
_PROFILE_TITLE = "A profiled request (X-Lagscope-Profile: 1)"


@dataclass(frozen=True)
class Plan:
    """How many requests each rung sends, and its own time budget (seconds)."""

    resolve_samples: int = 3
    sequence: int = 10
    burst_clients: int = 6
    burst_requests: int = 2
    cold: int = 15
    warm: int = 25
    coldwarm_s: float = 6.0
    queue_levels: tuple[int, ...] = (1, 2, 4, 8)
    queue_requests: int = 4
    queue_level_s: float = 1.5
    direct_cold: int = 8
    direct_warm: int = 15
    direct_s: float = 4.0
    db_samples: int = 5
    back_to_back: int = 20
    back_to_back_s: float = 1.0
    # At least 6: the fewest that give a 95 % interval for the median.
    split_samples: int = 8
    split_idle_max_s: float = 0.6


QUICK = Plan(
    resolve_samples=2,
    sequence=6,
    burst_clients=4,
    burst_requests=1,
    cold=8,
    warm=10,
    coldwarm_s=1.5,
    queue_levels=(1, 2, 4),
    queue_requests=2,
    queue_level_s=0.5,
    direct_cold=6,
    direct_warm=6,
    direct_s=1.0,
    db_samples=3,
    back_to_back=12,
    back_to_back_s=0.5,
    split_samples=_MIN_SAMPLES,
)


@dataclass(frozen=True)
class DiagnoseOptions:
    probe: ProbeOptions  # the target, headers, pins, TLS, timeout and the run's max time
    direct: ProbeOptions | None = None
    database: Dsn | None = None  # parsed: a bad one failed before anything was measured
    allow_load: bool = False
    quick: bool = False
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    command: tuple[str, ...] = ()
    plan: Plan = field(default_factory=Plan)
    browser: BrowserAsk | None = None  # --browser: a real browser loads the URL last

    def __post_init__(self) -> None:
        if self.quick and self.plan == Plan():
            object.__setattr__(self, "plan", QUICK)


class _Ladder:
    def __init__(
        self,
        opts: DiagnoseOptions,
        network: Network,
        clock: Clock,
        environ: Mapping[str, str],
        platform_name: str,
        progress: Progress | None,
    ) -> None:
        self.opts = opts
        self.probe = opts.probe
        self.network = network
        self.clock = clock
        self.environ = environ
        self.platform_name = platform_name
        self.progress = progress
        self.run_start = clock.now_ns()
        self.run_end = self.run_start + int(opts.probe.max_time_s * 1e9)
        self.records: list[RequestRecord] = []
        self.rungs: list[Rung] = []
        self.warnings: list[str] = []
        self.truncated = False
        self._connections = 0
        # Why the first request stopped on a redirect it did not follow (evidence.Hygiene).
        self.redirect_stop: str | None = None
        # Kept-alive connections the server closed silently, from every rung's clients:
        # (requests carried, seconds idle); the request was retried on a new connection.
        self.silent_closes: list[tuple[int, float]] = []
        self.loopback = is_loopback_host(
            self.probe.target.host, self.probe.pinned(self.probe.target.host)
        )

    def load_refused(self) -> str | None:
        """Why the load rungs (the burst, the concurrency ladder) may not run, or None: they
        only ever hit the host and port the user gave, and only on loopback, unless
        --allow-load. A redirect elsewhere, even to another loopback port, is followed for
        single requests but never loaded."""
        if self.opts.allow_load:
            return None
        if not self.loopback:
            return "the host is not loopback; use --allow-load"
        given, now = self.opts.probe.target, self.probe.target
        if (now.host.lower(), now.port) != (given.host.lower(), given.port):
            where = format_host_port(now.host, now.port)
            return f"the URL redirects to {where}, not the address given; use --allow-load"
        return None

    # --- bookkeeping ------------------------------------------------------------------------

    def _say(self, rung: str, message: str) -> None:
        if self.progress is not None:
            self.progress(rung, message)

    def _left_s(self) -> float:
        return (self.run_end - self.clock.now_ns()) / 1e9

    def _client(self, probe: ProbeOptions | None = None) -> Client:
        return Client(probe or self.probe, self.network, self.clock, run_end_ns=self.run_end)

    def _keep(self, records: Sequence[RequestRecord], series: str | None = None) -> None:
        """Adds a rung's records with run-wide connection ids."""
        base = self._connections
        top = base
        for r in records:
            conn = base + r.connection
            top = max(top, conn + 1)
            self.records.append(replace(r, connection=conn, series=series or r.series))
        self._connections = top

    def _rung(
        self,
        name: str,
        title: str,
        t0: int,
        figures: Sequence[Figure] = (),
        notes: Sequence[str] = (),
        status: RungStatus = "ran",
    ) -> None:
        ms = (self.clock.now_ns() - t0) / 1e6
        self.rungs.append(Rung(name, title, status, round(ms, 3), tuple(figures), tuple(notes)))
        self._say(name, f"{status} ({ms / 1000:.1f} s)")

    def _skip(self, name: str, title: str, why: str) -> None:
        self.rungs.append(Rung(name, title, "skipped", 0.0, (), (why,)))
        self._say(name, f"skipped: {why}")

    # --- rungs ---------------------------------------------------------------------------

    def environment(self) -> Environment:
        t0 = self.clock.now_ns()
        self._say("environment", "start")
        env = gather(self.probe.target.url, self.environ, self.platform_name)
        self._rung(
            "environment",
            "Environment",
            t0,
            [
                Figure("os", env.os),
                Figure("python", env.python),
                Figure("proxy_variables", ", ".join(k for k, _ in env.proxy_vars) or "none"),
                Figure("proxy_applies", env.proxy_applies),
                Figure("security_products", describe(env)),
            ],
        )
        return env

    def resolution(self) -> Resolution:
        t0 = self.clock.now_ns()
        self._say("resolution", "start")
        # A connect that hangs (a dropped SYN) says what it needs to in a few seconds; a
        # Windows refused-loopback connect takes ~2 s.
        client = self._client(
            replace(self.probe, timeout_s=min(self.probe.timeout_s, _RESOLUTION_TIMEOUT_S))
        )
        host = self.probe.target.host
        resolve_ms: list[float] = []
        candidates = []
        for _ in range(self.opts.plan.resolve_samples):
            r0 = self.clock.now_ns()
            candidates = client.candidates()
            resolve_ms.append((self.clock.now_ns() - r0) / 1e6)
        if not candidates:
            raise LagscopeError("resolve", f"no usable address for {host!r}", ExitCode.RESOLVE)
        probes: list[AddressProbe] = []
        for family, addr in candidates:
            outcomes: list[str] = []
            times: list[float] = []
            for _ in range(self.opts.plan.resolve_samples):
                phase = client.phase("connect")
                stream, attempt = client.connect_one(family, addr, phase)
                if stream is not None:
                    stream.close()
                outcomes.append(attempt.outcome)
                times.append(attempt.ms)
                if attempt.outcome == "timeout":
                    break  # one timeout says enough; do not spend the run on it
            probes.append(
                AddressProbe(
                    str(addr[0]),
                    "ipv6" if ":" in str(addr[0]) else "ipv4",
                    tuple(outcomes),
                    tuple(times),
                )
            )
        if not any(p.connects for p in probes):
            tried = "; ".join(
                f"{p.address}:{self.probe.target.port} {p.outcomes[0]}" for p in probes
            )
            code = (
                ExitCode.TIMEOUT
                if all(p.outcomes[0] == "timeout" for p in probes)
                else ExitCode.CONNECT
            )
            raise LagscopeError("connect", tried, code)
        hostname_ms: list[float] = []
        hangs = any("timeout" in p.outcomes for p in probes)
        for _ in range(1 if hangs else self.opts.plan.resolve_samples):
            c0 = self.clock.now_ns()
            conn = client.open("resolution: a connect as a client makes it")
            hostname_ms.append((self.clock.now_ns() - c0) / 1e6)
            conn.close()
        unlistened = self._other_loopback(client, candidates)
        res = Resolution(
            host=host,
            is_name=_is_name(host),
            source=client.state.resolve_source,
            resolve_ms=tuple(resolve_ms),
            addresses=tuple(probes),
            hostname_connect_ms=tuple(hostname_ms),
            unlistened=unlistened,
        )
        figures = [Figure("addresses", ", ".join(p.address for p in probes))]
        for p in probes:
            figures.append(
                figure(f"connect_{p.address}_ms", summary_of(p.connect_ms))
                if p.connects
                else Figure(f"connect_{p.address}", "/".join(sorted(set(p.outcomes))))
            )
        figures.append(figure("hostname_connect_ms", summary_of(hostname_ms)))
        figures.append(figure("resolve_ms", summary_of(resolve_ms)))
        notes = [f"{a} does not answer (nothing listens there)" for a in unlistened]
        first_ok = next(p for p in probes if p.connects)
        slow_lookup = (
            res.source != "pinned"
            and statistics.median(resolve_ms) >= self.opts.thresholds.slow_resolve_ms
        )
        if probes[0] is not first_ok or slow_lookup:
            # The rest of the ladder connects where the host answers, as a client with
            # happy eyeballs would, and without looking the name up again when that is
            # slow: the fallback's and the lookup's prices are this rung's findings, and
            # the cold budget takes the lookup from here.
            pins = tuple((h, a) for h, a in self.probe.resolve if h != host.lower())
            self.probe = replace(self.probe, resolve=(*pins, (host.lower(), (first_ok.address,))))
            notes.append(f"later rungs connect to {first_ok.address} directly")
        self._rung("resolution", "Name resolution", t0, figures, notes)
        return res

    def protocol(self) -> str:
        """https: the protocol the server offers a browser (ALPN over h2 and http/1.1)."""
        t0 = self.clock.now_ns()
        self._say("protocol", "start")
        client = self._client()
        picked, tls_ms = client.offered_protocol("protocol: a TLS handshake offering h2")
        alpn = picked or ""
        figures = [Figure("alpn", alpn or "none")]
        if tls_ms is not None:
            figures.append(Figure("tls_handshake_ms", round(tls_ms, 3), "ms"))
        if alpn == "h2":
            note = (
                "the server offers HTTP/2: a browser sends every request of a page down one "
                "connection per origin"
            )
        else:
            note = (
                "the server offers HTTP/1.1 only: a browser opens up to 6 connections per "
                "origin, each paying any per-connection cost; lagscope serve --https or "
                "nginx-config --https offer HTTP/2 (docs/https.md)"
            )
        self._rung("protocol", "Protocol offered to browsers (ALPN)", t0, figures, [note])
        return alpn

    def _other_loopback(
        self, client: Client, candidates: Sequence[tuple[int, SockAddr]]
    ) -> tuple[str, ...]:
        """For names that resolve to loopback: the loopback address that refuses."""
        if not _is_name(self.probe.target.host):
            return ()
        seen = {str(addr[0]) for _, addr in candidates}
        if not seen <= {"127.0.0.1", "::1"}:
            return ()
        port = self.probe.target.port
        others: list[tuple[int, SockAddr]] = [
            (socket.AF_INET6, ("::1", port, 0, 0)),
            (socket.AF_INET, ("127.0.0.1", port)),
        ]
        out: list[str] = []
        for family, addr in others:
            if str(addr[0]) in seen:
                continue
            try:
                stream, attempt = client.connect_one(
                    family, addr, client.phase("connect"), _OTHER_LOOPBACK_TIMEOUT_S
                )
            except (TimeoutError, OSError):
                continue
            if stream is not None:
                stream.close()
            elif attempt.outcome in ("refused", "timeout"):
                out.append(str(addr[0]))
        return tuple(out)

    def first_and_redirects(self) -> tuple[RequestRecord, tuple[RedirectHop, ...]]:
        """The run's first request, to the URL as given; redirects are followed from it.

        A redirect this tool cannot or may not follow (a Location that is not an http(s)
        URL, another host, a hop that does not answer, a loop, more than _MAX_REDIRECTS) ends
        the following: the rest of the run diagnoses the last response that answered, and a
        warning names the redirect. The server's string never decides the exit code."""
        t0 = self.clock.now_ns()
        self._say("first request", "start")
        hops: list[RedirectHop] = []
        first: RequestRecord | None = None
        probe = self.probe
        seen = {probe.target.url}
        while True:
            client = self._client(probe)
            start = self.clock.now_ns()
            try:
                conn = client.open("the first request")
                try:
                    ex = client.exchange(conn, "the first request")
                finally:
                    conn.close()
            except LagscopeError as exc:
                if first is None:
                    raise  # the URL as given: its failure is the run's
                self.warnings.append(
                    f"the redirect to {_shown(probe.target.url)} could not be followed "
                    f"({exc.one_line()}); diagnosing the redirect itself"
                )
                self.redirect_stop = "no answer"
                break  # self.probe is still the last URL that answered
            record = make_record("first", 0, conn, True, ex, start, self.run_start)
            self._keep([record])
            if first is None:
                first = record
            self.probe = probe  # this URL answered: the rest of the run may measure it
            location = dict(ex.headers).get("location")
            if ex.status not in _REDIRECTS or not location:
                break
            stop = self._next_hop(probe, location, len(hops), seen)
            target = stop if isinstance(stop, str) else stop.target.url
            hops.append(RedirectHop(probe.target.url, ex.status, target, record.total_ms))
            if isinstance(stop, str):
                break
            seen.add(stop.target.url)
            probe = stop
        assert first is not None
        figures = [
            Figure("status", first.status),
            Figure("total_ms", round(first.total_ms, 3), "ms"),
        ]
        figures += [Figure(f"redirect {h.status}", h.location) for h in hops]
        self._rung("first request", "The run's first request", t0, figures)
        return first, tuple(hops)

    def _next_hop(
        self, probe: ProbeOptions, location: str, followed: int, seen: set[str]
    ) -> ProbeOptions | str:
        """The options for the next hop, or (not followed) the Location as shown, with a
        warning saying why."""
        shown = _shown(location)
        try:
            nxt = parse_url(urljoin(probe.target.url, location))
        except (ValueError, LagscopeError) as exc:
            reason = exc.one_line() if isinstance(exc, LagscopeError) else str(exc)
            self.warnings.append(
                f"the redirect's Location {shown} is not a URL this tool can follow "
                f"({_shown(reason, 120)}); diagnosing the redirect itself"
            )
            self.redirect_stop = "bad location"
            return shown
        if nxt.url in seen:
            self.warnings.append(
                f"redirect loop: {_shown(nxt.url)} was already visited; diagnosing the "
                "redirect itself"
            )
            self.redirect_stop = "loop"
            return nxt.url
        if followed >= _MAX_REDIRECTS:
            self.warnings.append(
                f"too many redirects: still redirecting after {followed} (to "
                f"{_shown(nxt.url)}); diagnosing the last one"
            )
            self.redirect_stop = "too many"
            return nxt.url
        if not (nxt.host == probe.target.host or is_loopback_host(nxt.host)):
            self.warnings.append(
                f"the URL redirects to another host ({_shown(nxt.host)}); "
                "diagnosing the redirect itself"
            )
            return nxt.url
        return replace(probe, target=nxt)

    def _in_order(
        self, client: Client, count: int, series: str, where: str, interval_s: float = 0.0
    ) -> list[RequestRecord]:
        """``count`` requests one after another on one kept-alive connection (a new one
        when the server closes it), ``interval_s`` apart."""
        local: list[RequestRecord] = []
        conn: Connection | None = None
        try:
            for i in range(count):
                if interval_s and i:
                    self.clock.sleep(interval_s)
                start = self.clock.now_ns()
                new = conn is None
                if conn is None:
                    conn = client.open(where)
                conn, ex, again = client.exchange_reusing(conn, f"{where} request {i + 1}")
                local.append(make_record(series, i, conn, new or again, ex, start, self.run_start))
                if not ex.keep_alive:
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()
            self.silent_closes += client.state.silent_closes
        return local

    def warmup(self, first: RequestRecord) -> Warmup:
        t0 = self.clock.now_ns()
        self._say("warm-up", "start")
        plan = self.opts.plan
        client = self._client()
        sequence: list[RequestRecord] = [first] if first.status not in _REDIRECTS else []
        interval_s = 0.0 if self.loopback else 1.0 / REMOTE_RATE_PER_S
        local = self._in_order(client, plan.sequence, "warmup", "warm-up", interval_s)
        self._keep(local)
        sequence += self.records[-len(local) :] if local else []
        burst: list[RequestRecord] = []
        refused = self.load_refused()
        if refused is None:
            burst = self._concurrent(plan.burst_clients, plan.burst_requests, "burst", warmup=0)
        else:
            self.warnings.append(f"no concurrent burst: {refused}")
        threads = {metric_desc(r, "thread") for r in sequence + burst} - {None}
        figures = [
            Figure("sequence_totals_ms", ", ".join(f"{r.total_ms:.1f}" for r in sequence)),
            Figure("burst_requests", len(burst)),
            Figure("threads_seen", len(threads) or None),
            figure("burst_total_ms", summary_of(r.total_ms for r in burst)),
        ]
        self._rung("warm-up", "Per-worker warm-up (the run's first requests)", t0, figures)
        return Warmup(tuple(sequence), tuple(burst))

    def _concurrent(
        self, clients: int, requests: int, series: str, warmup: int, budget_s: float | None = None
    ) -> list[RequestRecord]:
        """``clients`` threads, each on its own keep-alive connection, started together."""
        stop_at = self.run_end
        if budget_s is not None:
            stop_at = min(stop_at, self.clock.now_ns() + int(budget_s * 1e9))
        results: list[list[RequestRecord]] = [[] for _ in range(clients)]
        errors: list[BaseException] = []
        closes: list[tuple[int, float]] = []
        gate = threading.Barrier(clients)

        def work(k: int) -> None:
            client = Client(self.probe, self.network, self.clock, run_end_ns=self.run_end)
            conn: Connection | None = None
            try:
                gate.wait(timeout=10)
                for i in range(warmup + requests):
                    if i >= warmup + 1 and self.clock.now_ns() >= stop_at:
                        break
                    start = self.clock.now_ns()
                    new = conn is None
                    if conn is None:
                        conn = client.open(f"{series} client {k + 1}")
                    conn, ex, again = client.exchange_reusing(conn, f"{series} client {k + 1}")
                    if i >= warmup:
                        results[k].append(
                            make_record(
                                series, i - warmup, conn, new or again, ex, start, self.run_start
                            )
                        )
                    if not ex.keep_alive:
                        conn.close()
                        conn = None
            except (LagscopeError, RunDeadline, threading.BrokenBarrierError) as exc:
                errors.append(exc)
            except Exception as exc:  # raised again below, in the run's own thread
                errors.append(exc)
            finally:
                if conn is not None:
                    conn.close()
                closes.extend(client.state.silent_closes)

        threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out: list[RequestRecord] = []
        for k, rs in enumerate(results):
            # Each client's connections get their own ids within this rung.
            out += [replace(r, connection=k) for r in rs]
        self.silent_closes += closes
        bugs = [
            e
            for e in errors
            if not isinstance(e, (LagscopeError, RunDeadline, threading.BrokenBarrierError))
        ]
        if bugs:
            # Not a traceback on a thread's stderr with the run going on without its data.
            raise bugs[0]
        lagscope_errors = [e for e in errors if isinstance(e, LagscopeError)]
        if lagscope_errors and not out:
            raise lagscope_errors[0]
        if any(isinstance(e, RunDeadline) for e in errors):
            self.truncated = True
        self._keep(out)
        return self.records[-len(out) :] if out else []

    def coldwarm(
        self, probe: ProbeOptions, name: str, title: str, cold: int, warm: int, budget_s: float
    ) -> ColdWarm:
        t0 = self.clock.now_ns()
        self._say(name, "start")
        left = self._left_s()
        if left <= 0:
            raise RunDeadline(name)
        cold, warm = self._fit(cold, warm, budget_s)
        opts = replace(probe, cold=cold, warm=warm, max_time_s=max(0.001, left))
        report = run_probe(opts, self.network, self.clock)
        if report.keep_alive.supported:
            # Its warm connection found closed and retried: counted, not itemised.
            self.silent_closes += [(-1, 0.0)] * report.keep_alive.reconnects
        prefix = "" if name == "cold vs warm" else "direct-"
        records = [r for s in report.series for r in s.requests]
        records.sort(key=lambda r: r.start_ms)
        offset = (t0 - self.run_start) / 1e6
        self._keep(
            [replace(r, start_ms=r.start_ms + offset, series=prefix + r.series) for r in records]
        )
        mine = self.records[-len(records) :]
        cw = ColdWarm(
            cold=tuple(r for r in mine if r.series == prefix + "cold"),
            warm=tuple(r for r in mine if r.series == prefix + "warm"),
            warm_first=tuple(r for r in mine if r.series == prefix + "warm_first"),
            keep_alive=report.keep_alive.supported,
            keep_alive_reason=report.keep_alive.reason,
        )
        if report.truncated:
            self.warnings.append(f"{name}: its time budget ran out before all requests were made")
        self._rung(name, title, t0, _coldwarm_figures(cw, report))
        return cw

    def _fit(self, cold: int, warm: int, budget_s: float) -> tuple[int, int]:
        """Counts that fit the rung's time budget at the speed seen so far, never below what
        a 95 % median interval needs (6 each): a slow stack takes longer, not less evidence."""
        new = [r.total_ms for r in self.records if not r.reused]
        reused = [r.total_ms for r in self.records if r.reused]
        if not new:
            return cold, warm
        cold_ms = statistics.median(new)
        warm_ms = statistics.median(reused) if reused else cold_ms
        affordable = budget_s * 1000 / max(0.05, cold_ms + warm_ms)
        pairs = max(_MIN_SAMPLES, int(affordable))
        return min(cold, pairs), min(warm, max(_MIN_SAMPLES + 2, pairs))

    def back_to_back(self) -> tuple[RequestRecord, ...]:
        """Requests back to back on one kept-alive connection, as a browser fetches a
        page's assets: no pause lets the client's delayed ACK fire early, so a server's
        small-write stall shows on every request."""
        t0 = self.clock.now_ns()
        self._say("back to back", "start")
        client = self._client()
        plan = self.opts.plan
        # As many as fit the rung's time at the warm speed seen so far (a slow page, or a
        # 200 ms Windows stall, gets fewer), never fewer than a median interval needs.
        seen_ms = [r.total_ms for r in self.records if r.reused]
        count = plan.back_to_back
        if seen_ms:
            affordable = int(plan.back_to_back_s * 1000 / max(0.05, statistics.median(seen_ms)))
            count = min(count, max(_MIN_SAMPLES + 1, affordable))
        local = self._in_order(client, count, "back_to_back", "back-to-back")
        self._keep(local)
        mine = tuple(self.records[-len(local) :]) if local else ()
        reused = [r for r in mine if r.reused]
        self._rung(
            "back to back",
            "Reused connection, requests back to back",
            t0,
            [
                figure("total_ms", summary_of(r.total_ms for r in reused)),
                figure("receive_ms", summary_of(r.receive_ms for r in reused)),
                figure("wait_ms", summary_of(r.wait_ms for r in reused)),
            ],
        )
        return mine

    def setup_split(self, wait_ms: float, keep_alive: bool) -> SetupSplit:
        """For a server that reports no timing: cheap requests for a page that does not
        exist, which wait for what every request (or connection) pays but do none of the
        page's work (trusted only when the server answers them differently from the
        page); and, when the server closes every connection, fresh connections that send
        their request's first byte and then stay idle before the rest, where a cost paid
        for setting up the connection or for its first bytes is absorbed and the app's time
        (which needs the whole request) is not."""
        t0 = self.clock.now_ns()
        self._say("setup vs app", "start")
        plan = self.opts.plan
        target = parse_url(urljoin(self.probe.target.url, _CHEAP_PATH))
        cheap_client = self._client(replace(self.probe, target=target))
        idle: list[RequestRecord] = []
        cheap: list[RequestRecord] = []
        cheap_reused: list[RequestRecord] = []
        # Idle longer than the suspected tax (all of the wait, at most), so a cost paid
        # while the connection is set up is over before the request is sent.
        idle_s = min(plan.split_idle_max_s, wait_ms * 1.5 / 1000 + 0.02)
        if keep_alive:
            cheap_reused = self._in_order(
                cheap_client, plan.split_samples + 1, "cheap", "setup vs app: cheap"
            )
        else:
            client = self._client()
            for i in range(plan.split_samples):
                fresh = client.open("setup vs app: idle connection")
                try:
                    start = self.clock.now_ns()
                    ex = client.exchange(fresh, "setup vs app: after idle", hold_s=idle_s)
                finally:
                    fresh.close()
                idle.append(make_record("idle_first", i, fresh, True, ex, start, self.run_start))
            for i in range(plan.split_samples):
                start = self.clock.now_ns()
                fresh = cheap_client.open("setup vs app: cheap request")
                try:
                    ex = cheap_client.exchange(fresh, "setup vs app: cheap request")
                finally:
                    fresh.close()
                cheap.append(make_record("cheap", i, fresh, True, ex, start, self.run_start))
        for records in (idle, cheap, cheap_reused):
            self._keep(records)
        split = SetupSplit(
            round(idle_s * 1000, 3) if idle else 0.0,
            tuple(idle),
            _CHEAP_PATH,
            tuple(cheap),
            tuple(cheap_reused),
        )
        statuses = sorted({r.status for r in cheap + cheap_reused})
        self._rung(
            "setup vs app",
            "The page's own work against what every request or connection pays",
            t0,
            [
                Figure("idle_before_request_ms", split.idle_ms if idle else None, "ms"),
                figure("wait_after_idle_ms", summary_of(r.wait_ms for r in idle)),
                figure("cheap_request_wait_ms", summary_of(r.wait_ms for r in cheap)),
                figure(
                    "cheap_request_reused_wait_ms",
                    summary_of(r.wait_ms for r in cheap_reused if r.reused),
                ),
                Figure("cheap_request_status", ", ".join(map(str, statuses)) or None),
            ],
        )
        return split

    def queue(self) -> tuple[QueueLevel, ...]:
        t0 = self.clock.now_ns()
        self._say("queueing", "start")
        plan = self.opts.plan
        levels: list[QueueLevel] = []
        for clients in plan.queue_levels:
            if self._left_s() <= 0:
                self.truncated = True
                break
            records = self._concurrent(
                clients, plan.queue_requests, f"c{clients}", warmup=1, budget_s=plan.queue_level_s
            )
            levels.append(QueueLevel(clients, tuple(records)))
        figures: list[Figure] = []
        for lv in levels:
            figures.append(
                figure(f"clients_{lv.clients}_wait_ms", summary_of(r.wait_ms for r in lv.records))
            )
            out = summary_of(outside_app_ms(r) for r in lv.records)
            if out is not None:
                figures.append(figure(f"clients_{lv.clients}_outside_app_ms", out))
                figures.append(
                    figure(
                        f"clients_{lv.clients}_app_ms", summary_of(r.app_ms() for r in lv.records)
                    )
                )
        self._rung("queueing", "Concurrency ladder", t0, figures)
        return tuple(levels)

    def database(self, dsn: Dsn, sessions_per_request: float | None) -> DatabaseProbe:
        from lagscope.diagnose.database import probe_database

        t0 = self.clock.now_ns()
        self._say("database", "start")
        db = probe_database(
            dsn, self.opts.plan.db_samples, self.probe.timeout_s, self.clock, self.run_end
        )
        db = replace(db, sessions_per_request=sessions_per_request)
        figures = [
            Figure("dsn", db.shown_dsn),
            figure("connect_ms", summary_of(db.connect_ms)),
            figure("select_1_ms", summary_of(db.select1_ms)),
            figure("connect_gssencmode_disable_ms", summary_of(db.gss_disabled_connect_ms)),
        ]
        figures.append(Figure("sessions_per_request", sessions_per_request))
        app_dbconn = summary_of(metric_ms(r, "dbconn") for r in self.records)
        figures.append(figure("app_dbconn_ms", app_dbconn))
        self._rung(
            "database", "The database directly", t0, figures, (db.error,) if db.error else ()
        )
        return db

    def hygiene(self, hops: tuple[RedirectHop, ...]) -> Hygiene:
        t0 = self.clock.now_ns()
        self._say("http hygiene", "start")
        probe = replace(
            self.probe,
            headers=(*self.probe.headers, ("Accept-Encoding", "gzip, deflate, br")),
        )
        client = self._client(probe)
        start = self.clock.now_ns()
        conn = client.open("http hygiene")
        try:
            ex = client.exchange(conn, "http hygiene", keep_body=True)
        finally:
            conn.close()
        self._keep([make_record("hygiene", 0, conn, True, ex, start, self.run_start)])
        headers = dict(ex.headers)
        encoding = headers.get("content-encoding")
        compressed = None
        if not encoding and ex.body:
            compressed = len(gzip.compress(ex.body, compresslevel=6))
        hy = Hygiene(
            redirects=hops,
            content_type=headers.get("content-type"),
            content_encoding=encoding,
            body_bytes=ex.body_bytes,
            compressed_bytes=compressed,
            receive_ms=ex.receive_ms,
            redirect_stop=self.redirect_stop,
        )
        self._rung(
            "http hygiene",
            "HTTP hygiene",
            t0,
            [
                Figure("redirects", len(hops)),
                Figure("content_type", hy.content_type),
                Figure("content_encoding", encoding or "none"),
                Figure("body_bytes", ex.body_bytes, "B"),
                Figure("gzip_bytes", compressed, "B"),
            ],
        )
        return hy

    def profile(self, seen: Sequence[RequestRecord]) -> ProfileProbe:
        """Ask the server for a profile of this URL, only when ``seen`` (the steady-state
        responses) carry lagscope's trusted Server-Timing detail."""
        if not seen or not all(trusted_detail(r) for r in seen):
            self._skip("profile", _PROFILE_TITLE, "the server's Server-Timing is not detailed")
            return ProfileProbe(0, None, UNTRUSTED_LINE)
        t0 = self.clock.now_ns()
        self._say("profile", "start")
        probe = replace(self.probe, headers=(*self.probe.headers, (PROFILE_HEADER, REQUEST_VALUE)))
        client = self._client(probe)
        records: list[RequestRecord] = []
        got: Profile | None = None
        reason: str | None = None
        start = self.clock.now_ns()
        conn = client.open("the profiled request")
        try:
            for index in range(_PROFILE_REQUESTS):
                if index and (self._left_s() <= 0 or not records[-1].keep_alive):
                    break
                start = self.clock.now_ns()
                ex = client.exchange(conn, "the profiled request")
                records.append(
                    make_record("profile", index, conn, index == 0, ex, start, self.run_start)
                )
                value = dict(ex.headers).get(PROFILE_HEADER.lower())
                if value is None:
                    got, reason = (
                        None,
                        (
                            "No profile: the server answered without one (lagscope's middleware "
                            "older than profile mode, or a proxy dropped the header)."
                        ),
                    )
                    break
                try:
                    parsed = parse_header(value)
                except ProfileError as exc:
                    got, reason = None, f"No profile: the server's profile was refused ({exc})."
                    break
                if isinstance(parsed, str):
                    got, reason = None, REASON_LINES[parsed]
                    break
                got, reason = parsed, None
        finally:
            conn.close()
        self._keep(records)
        figures: list[Figure] = [Figure("requests", len(records))]
        if got is not None:
            figures.append(Figure("profiled_ms", got.duration_ms, "ms"))
            figures.append(Figure("frames", len(got.frames)))
        request_ms = records[-1].total_ms if records else None
        self._rung("profile", _PROFILE_TITLE, t0, figures, () if reason is None else (reason,))
        return ProfileProbe(len(records), got, reason, request_ms)

    def browser(self, ask: BrowserAsk, choice: BrowserChoice) -> BrowserRun | None:
        t0 = self.clock.now_ns()
        self._say("browser", "start")
        run, notes = run_browser(
            self.opts.probe.target.url,
            choice,
            ask,
            self._left_s(),
            self.probe.timeout_s,
            not self.probe.verify_tls,
            self.clock.sleep,
        )
        self.warnings.extend(f"browser: {n}" for n in notes)
        if run is None:
            self._rung("browser", "A real browser", t0, (), notes, status="skipped")
            return None
        if run.idle_rule:
            notes.append(run.idle_rule)
        self._rung("browser", "A real browser loads the page", t0, rung_figures(run), notes)
        return run


def _shown(text: str, limit: int = 200) -> str:
    """A server's string inside a warning: quoted, control characters escaped, cut."""
    quoted = ascii(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def _is_name(host: str) -> bool:
    return not (re.fullmatch(r"[0-9.]+", host) or ":" in host)


def _coldwarm_figures(cw: ColdWarm, report: ProbeReport) -> list[Figure]:
    figures = [
        figure("cold_total_ms", summary_of(r.total_ms for r in cw.cold)),
        figure("warm_total_ms", summary_of(r.total_ms for r in cw.warm)),
        figure("warm_first_total_ms", summary_of(r.total_ms for r in cw.warm_first)),
        figure("cold_connect_ms", summary_of(r.connect_ms for r in cw.cold)),
        figure("cold_wait_ms", summary_of(r.wait_ms for r in cw.cold)),
        figure("warm_wait_ms", summary_of(r.wait_ms for r in cw.warm)),
        figure("warm_receive_ms", summary_of(r.receive_ms for r in cw.warm)),
        Figure("keep_alive", cw.keep_alive),
    ]
    if cw.keep_alive_reason:
        figures.append(Figure("keep_alive_refused_because", cw.keep_alive_reason))
    for c in report.comparisons:
        if c.phase == "total":
            figures.append(
                Figure(
                    "cold_minus_warm_ms",
                    round(c.diff_ms, 3),
                    "ms",
                    round(c.diff_low_ms, 3),
                    round(c.diff_high_ms, 3),
                )
            )
            figures.append(Figure("beyond_noise", c.significant))
    timed = [r for r in cw.warm if r.app_ms() is not None]
    if timed:
        figures.append(figure("warm_app_ms", summary_of(r.app_ms() for r in timed)))
        figures.append(figure("warm_outside_app_ms", summary_of(outside_app_ms(r) for r in timed)))
        for name in ("view", "tpl", "db", "dbconn", "queue"):
            s = summary_of(metric_ms(r, name) for r in timed)
            if s is not None:
                figures.append(figure(f"warm_{name}_ms", s))
        conns = [metric_desc(r, "conn") for r in cw.warm if r.reused]
        seen = [c for c in conns if c]
        if seen:
            figures.append(
                Figure(
                    "server_saw_new_on_reused_share",
                    round(sum(c == "new" for c in seen) / len(seen), 3),
                )
            )
    return figures


def diagnose(
    opts: DiagnoseOptions,
    network: Network | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    platform_name: str = sys.platform,
    progress: Progress | None = None,
) -> DiagnoseReport:
    """Run the ladder against ``opts.probe.target`` and return the report.

    Raises LagscopeError (one line, an exit code) when the target cannot be measured.
    """
    network = network or SystemNetwork()
    clock = clock or SystemClock()
    ladder = _Ladder(
        opts, network, clock, os.environ if environ is None else environ, platform_name, progress
    )
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    # Asked for a browser: find it before measuring anything, so a missing one fails at once.
    browser_choice = check_browser(opts.browser) if opts.browser is not None else None
    env = ladder.environment()
    ev = Evidence(
        url=redact.url(opts.probe.target.url),
        loopback=ladder.loopback,
        environment=env,
        command=shlex.join(opts.command) if opts.command else "",
    )
    plan = opts.plan
    sessions_per_request: float | None = None
    try:
        ev = replace(ev, resolution=ladder.resolution())
        if opts.probe.target.scheme == "https":
            ev = replace(ev, alpn=ladder.protocol())
        first, hops = ladder.first_and_redirects()
        ev = replace(ev, warmup=ladder.warmup(first))
        counter = _session_counter(opts, ladder._left_s())
        if counter is not None and counter.error is not None:
            # Said now: the run may end before the database rung names it.
            ladder.warnings.append(f"database: {counter.error}")
        before = counter.read() if counter else None
        try:
            coldwarm = ladder.coldwarm(
                ladder.probe,
                "cold vs warm",
                "New connections against one keep-alive connection",
                plan.cold,
                plan.warm,
                plan.coldwarm_s,
            )
            after = counter.read() if counter else None
        finally:
            if counter:
                counter.close()
        requests = len(coldwarm.cold) + len(coldwarm.warm) + len(coldwarm.warm_first)
        if coldwarm.keep_alive:
            coldwarm = replace(coldwarm, back_to_back=ladder.back_to_back())
        ev = replace(ev, coldwarm=coldwarm)
        # Without the app's own account, experiments split the time to first byte: on a
        # server that closes every connection, per-connection cost against the app's time;
        # on one that keeps them, time every request pays against the page's own work.
        timed = any(r.app_ms() is not None for r in coldwarm.cold + coldwarm.warm)
        ka = coldwarm.keep_alive
        wait = summary_of(
            r.wait_ms for r in (coldwarm.warm if ka else coldwarm.cold + coldwarm.warm)
        )
        floor = opts.thresholds.outside_app_ms if ka else opts.thresholds.setup_tax_ms
        if not timed and wait is not None and wait.p50_ms >= floor:
            ev = replace(ev, setup_split=ladder.setup_split(wait.p50_ms, ka))
        if before is not None and after is not None and requests:
            sessions_per_request = round((after - before) / requests, 3)
        refused = ladder.load_refused()
        if refused is None:
            ev = replace(ev, queue=ladder.queue())
        else:
            ladder._skip("queueing", "Concurrency ladder", refused)
        if opts.direct is not None:
            direct = replace(
                opts.direct, max_time_s=opts.probe.max_time_s, timeout_s=opts.probe.timeout_s
            )
            ev = replace(
                ev,
                direct=ladder.coldwarm(
                    direct,
                    "direct",
                    "The same experiments straight to the app",
                    plan.direct_cold,
                    plan.direct_warm,
                    plan.direct_s,
                ),
            )
        else:
            ladder._skip("direct", "Proxy hop", "no --direct URL given")
        if opts.database is not None:
            ev = replace(ev, database=ladder.database(opts.database, sessions_per_request))
        else:
            ladder._skip("database", "The database directly", "no --database DSN given")
        ev = replace(ev, hygiene=ladder.hygiene(hops))
        if opts.browser is not None and browser_choice is not None:
            ev = replace(ev, browser=ladder.browser(opts.browser, browser_choice))
        else:
            ladder._skip("browser", "A real browser", "no --browser")
    except RunDeadline as stop:
        ladder.truncated = True
        ladder.warnings.append(
            f"the run reached --max-time {opts.probe.max_time_s:g} s during {stop.phase}; "
            "later rungs were not measured"
        )
        if ev.coldwarm is None and ev.warmup is None:
            raise LagscopeError(
                "run",
                f"--max-time {opts.probe.max_time_s:g} s ran out before anything was measured",
                ExitCode.TIMEOUT,
            ) from None
    ev = replace(
        ev,
        proxy_server=_proxy_server(ladder.records),
        silent_closes=tuple(ladder.silent_closes),
    )
    findings = evaluate(ev, opts.thresholds)
    if ev.coldwarm is not None and any(f.id in PROFILED_FINDINGS for f in findings):
        try:
            ev = replace(ev, profile=ladder.profile(ev.coldwarm.warm or ev.coldwarm.cold))
        except RunDeadline:
            ladder.truncated = True
            ladder.warnings.append("the run reached --max-time before the profiled request")
            ev = replace(ev, profile=ProfileProbe(0, None, "No profile: the run ran out of time."))
        except LagscopeError as exc:
            failed = f"No profile: the profiled request failed ({exc.one_line()})."
            ev = replace(ev, profile=ProfileProbe(0, None, failed))
        findings = evaluate(ev, opts.thresholds)
    # The cheap request asks for a missing page on purpose.
    statuses = sorted({r.status for r in ladder.records if r.status >= 400 and r.series != "cheap"})
    if statuses:
        ladder.warnings.append(f"the server answered with error statuses: {statuses}")
    dropped = dropped_note(ladder.records)
    if dropped is not None:
        ladder.warnings.append(dropped)
    if (
        ev.proxy_server
        and ev.direct is None
        and not any(metric_desc(r, "conn") for r in ladder.records)
    ):
        ladder.warnings.append(
            f"a proxy answered ({ev.proxy_server}); rerun with --direct URL-of-the-app to "
            "measure its hop"
        )
    setup = setup_cost_ms(ev)
    return DiagnoseReport(
        schema=SCHEMA,
        tool_version=__version__,
        url=redact.url(opts.probe.target.url),
        final_url=redact.url(ladder.probe.target.url),
        command=opts.command,
        started_at=started_at,
        duration_ms=round((clock.now_ns() - ladder.run_start) / 1e6, 3),
        environment=env,
        rungs=tuple(ladder.rungs),
        findings=findings,
        budgets=budgets(ev),
        requests=tuple(ladder.records),
        truncated=ladder.truncated,
        warnings=tuple(ladder.warnings),
        browser=ev.browser,
        options=(
            ("quick", opts.quick),
            ("allow_load", opts.allow_load),
            ("direct", redact.url(opts.direct.target.url) if opts.direct else None),
            ("database", ev.database.shown_dsn if ev.database else None),
            ("timeout_s", opts.probe.timeout_s),
            ("max_time_s", opts.probe.max_time_s),
            ("header_names", [name for name, _ in opts.probe.headers]),
            ("resolve", {h: list(a) for h, a in opts.probe.resolve}),
            ("setup_cost_ms", None if setup is None else round(setup[0], 3)),
            ("fallback_cost_ms", round(fallback_cost_ms(ev), 3)),
        ),
    )


# The session count is best effort: its connect may take at most this share of the time
# left, so that a database that never answers cannot take the app's measurement's time.
_COUNTER_SHARE = 0.25


def _session_counter(opts: DiagnoseOptions, left_s: float) -> SessionCounter | None:
    if opts.database is None:
        return None
    return SessionCounter(
        opts.database, max(0.1, min(opts.probe.timeout_s, left_s * _COUNTER_SHARE))
    )


def _proxy_server(records: Sequence[RequestRecord]) -> str | None:
    for r in records:
        via = r.header("via")
        if via:
            return f"Via: {via}"
        server = (r.header("server") or "").lower()
        for name in ("nginx", "apache", "caddy", "envoy", "haproxy", "traefik", "iis"):
            if name in server:
                return f"Server: {r.header('server')}"
    return None

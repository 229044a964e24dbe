"""The isolation ladder: the experiments diagnose runs against a live stack, in order.

This module only sequences the rungs within the run's one deadline and turns what they
measured into the report. Each rung is a module of its own that measures through the
probe's core (:class:`lagscope.probe.runner.Client`, :func:`run_probe`) with the run's
``network`` and ``clock`` (:class:`lagscope.diagnose.context.LadderRun`), and returns its
evidence record: :mod:`~lagscope.diagnose.environment`, :mod:`~lagscope.diagnose.resolution`
(and the ALPN protocol), :mod:`~lagscope.diagnose.first_request`,
:mod:`~lagscope.diagnose.warmup`, :mod:`~lagscope.diagnose.coldwarm` (and back to back),
:mod:`~lagscope.diagnose.setup_split`, :mod:`~lagscope.diagnose.queueing`,
:mod:`~lagscope.diagnose.database`, :mod:`~lagscope.diagnose.hygiene`, the browser
(:mod:`~lagscope.diagnose.browser`) and :mod:`~lagscope.diagnose.profiled`. The evidence
goes to the pure rules (:mod:`lagscope.diagnose.rules`) and the budget
(:mod:`lagscope.diagnose.budget`).

The order matters. The very first requests of the run are the ones a freshly started
server answers first, so they are kept (never thrown away as warm-up) and sent before
anything else touches the app: they are how per-worker warm-up is seen. When the run's
deadline runs out the report says what was not measured.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import replace

from lagscope import __version__, redact
from lagscope.browser.locate import BrowserChoice
from lagscope.browser.model import BrowserRun
from lagscope.diagnose.browser import BrowserAsk, check_browser, run_browser, rung_figures
from lagscope.diagnose.budget import budgets
from lagscope.diagnose.coldwarm import MAIN, back_to_back, coldwarm
from lagscope.diagnose.context import LadderRun, Progress
from lagscope.diagnose.database import database_rung, session_counter
from lagscope.diagnose.environment import environment_rung
from lagscope.diagnose.evidence import (
    ColdWarm,
    Evidence,
    ProfileProbe,
    metric_desc,
    proxy_server,
    requests_before_close,
    summary_of,
)
from lagscope.diagnose.first_request import first_and_redirects
from lagscope.diagnose.hygiene import hygiene
from lagscope.diagnose.idle import IdleWatch
from lagscope.diagnose.model import SCHEMA, DiagnoseReport
from lagscope.diagnose.options import QUICK, DiagnoseOptions, Plan
from lagscope.diagnose.profiled import profile
from lagscope.diagnose.profiling import PROFILED_FINDINGS
from lagscope.diagnose.queueing import queue
from lagscope.diagnose.resolution import protocol, resolution
from lagscope.diagnose.rules import evaluate, fallback_cost_ms, setup_cost_ms
from lagscope.diagnose.setup_split import setup_split
from lagscope.diagnose.warmup import warmup
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.model import dropped_note
from lagscope.probe.net import Clock, Network, SystemClock, SystemNetwork
from lagscope.probe.runner import RunDeadline

__all__ = ["QUICK", "DiagnoseOptions", "Plan", "Progress", "diagnose"]


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
    clock = clock or SystemClock()
    run = LadderRun(opts, network or SystemNetwork(), clock, progress)
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    # Asked for a browser: find it before measuring anything, so a missing one fails at once.
    browser_choice = check_browser(opts.browser) if opts.browser is not None else None
    env = environment_rung(run, os.environ if environ is None else environ, platform_name)
    ev = Evidence(
        url=redact.url(opts.probe.target.url),
        loopback=run.loopback,
        environment=env,
        command=shlex.join(opts.command) if opts.command else "",
    )
    plan = opts.plan
    idle_watch = IdleWatch(run)
    try:
        ev = replace(ev, resolution=resolution(run))
        if opts.probe.target.scheme == "https":
            ev = replace(ev, alpn=protocol(run))
        first, hops = first_and_redirects(run)
        ev = replace(ev, warmup=warmup(run, first))
        assert ev.warmup is not None
        if len({r.connection for r in ev.warmup.burst}) >= plan.burst_clients:
            # Only on a server seen serving several connections at once: on one that
            # serves a connection at a time, an idle one would hold up every later rung.
            idle_watch.start()
        cw, sessions_per_request = _coldwarm_counted(run)
        if cw.keep_alive:
            cw = replace(cw, back_to_back=back_to_back(run))
        ev = replace(ev, coldwarm=cw)
        wait_ms = _untimed_wait_ms(run, cw)
        if wait_ms is not None:
            ev = replace(ev, setup_split=setup_split(run, wait_ms, cw.keep_alive))
        refused = run.load_refused()
        if refused is None:
            ev = replace(ev, queue=queue(run))
        else:
            run.skip("queueing", "Concurrency ladder", refused)
        if opts.direct is not None:
            direct = replace(
                opts.direct, max_time_s=opts.probe.max_time_s, timeout_s=opts.probe.timeout_s
            )
            ev = replace(
                ev,
                direct=coldwarm(
                    run,
                    direct,
                    "direct",
                    "The same experiments straight to the app",
                    plan.direct_cold,
                    plan.direct_warm,
                    plan.direct_s,
                ),
            )
        else:
            run.skip("direct", "Proxy hop", "no --direct URL given")
        if opts.database is not None:
            ev = replace(ev, database=database_rung(run, opts.database, sessions_per_request))
        else:
            run.skip("database", "The database directly", "no --database DSN given")
        ev = replace(ev, hygiene=hygiene(run, hops))
        if opts.browser is not None and browser_choice is not None:
            ev = replace(ev, browser=_browser(run, opts.browser, browser_choice))
        else:
            run.skip("browser", "A real browser", "no --browser")
        idle_watch.wait(plan.idle_wait_s)
    except RunDeadline as stop:
        run.truncated = True
        run.warnings.append(
            f"the run reached --max-time {opts.probe.max_time_s:g} s during {stop.phase}; "
            "later rungs were not measured"
        )
        if ev.coldwarm is None and ev.warmup is None:
            raise LagscopeError(
                "run",
                f"--max-time {opts.probe.max_time_s:g} s ran out before anything was measured",
                ExitCode.TIMEOUT,
            ) from None
    finally:
        idle_closed_after_s = idle_watch.stop()
    ev = replace(
        ev,
        idle_closed_after_s=idle_closed_after_s,
        proxy_server=proxy_server(run.records),
        silent_closes=tuple(run.silent_closes),
        closed_after=requests_before_close(run.records),
    )
    findings = evaluate(ev, opts.thresholds)
    if ev.coldwarm is not None and any(f.id in PROFILED_FINDINGS for f in findings):
        try:
            ev = replace(ev, profile=profile(run, ev.coldwarm.warm or ev.coldwarm.cold))
        except RunDeadline:
            run.truncated = True
            run.warnings.append("the run reached --max-time before the profiled request")
            ev = replace(ev, profile=ProfileProbe(0, None, "No profile: the run ran out of time."))
        except LagscopeError as exc:
            failed = f"No profile: the profiled request failed ({exc.one_line()})."
            ev = replace(ev, profile=ProfileProbe(0, None, failed))
        findings = evaluate(ev, opts.thresholds)
    _closing_warnings(run, ev)
    setup = setup_cost_ms(ev)
    return DiagnoseReport(
        schema=SCHEMA,
        tool_version=__version__,
        url=redact.url(opts.probe.target.url),
        final_url=redact.url(run.probe.target.url),
        command=opts.command,
        started_at=started_at,
        duration_ms=round((clock.now_ns() - run.run_start) / 1e6, 3),
        environment=env,
        rungs=tuple(run.rungs),
        findings=findings,
        budgets=budgets(ev, findings),
        requests=tuple(run.records),
        truncated=run.truncated,
        warnings=tuple(run.warnings),
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


def _coldwarm_counted(run: LadderRun) -> tuple[ColdWarm, float | None]:
    """The cold-vs-warm rung, with the new sessions PostgreSQL counted per request while
    it ran (``--database``; None when it cannot say)."""
    counter = session_counter(run.opts, run.left_s())
    if counter is not None and counter.error is not None:
        # Said now: the run may end before the database rung names it.
        run.warnings.append(f"database: {counter.error}")
    plan = run.plan
    before = counter.read() if counter else None
    try:
        cw = coldwarm(
            run,
            run.probe,
            MAIN,
            "New connections against one keep-alive connection",
            plan.cold,
            plan.warm,
            plan.coldwarm_s,
        )
        after = counter.read() if counter else None
    finally:
        if counter:
            counter.close()
    requests = len(cw.cold) + len(cw.warm) + len(cw.warm_first)
    if before is None or after is None or not requests:
        return cw, None
    return cw, round((after - before) / requests, 3)


def _untimed_wait_ms(run: LadderRun, cw: ColdWarm) -> float | None:
    """The wait to split into setup and the app's own work, or None when the server
    accounts for its own time or the wait is too small to hold a finding.

    Without the app's own account, experiments split the time to first byte: on a server
    that closes every connection, per-connection cost against the app's time; on one that
    keeps them, time every request pays against the page's own work."""
    if any(r.app_ms() is not None for r in cw.cold + cw.warm):
        return None
    t = run.thresholds
    ka = cw.keep_alive
    wait = summary_of(r.wait_ms for r in (cw.warm if ka else cw.cold + cw.warm))
    floor = t.outside_app_ms if ka else t.setup_tax_ms
    return wait.p50_ms if wait is not None and wait.p50_ms >= floor else None


def _browser(run: LadderRun, ask: BrowserAsk, choice: BrowserChoice) -> BrowserRun | None:
    """The browser rung: a real browser loads the URL in what is left of the run."""
    t0 = run.start("browser")
    visit, notes = run_browser(
        run.opts.probe.target.url,
        choice,
        ask,
        run.left_s(),
        run.probe.timeout_s,
        not run.probe.verify_tls,
        run.clock.sleep,
        run.probe.cafile,
    )
    run.warnings.extend(f"browser: {n}" for n in notes)
    if visit is None:
        run.done("browser", "A real browser", t0, (), notes, status="skipped")
        return None
    if visit.idle_rule:
        notes.append(visit.idle_rule)
    run.done("browser", "A real browser loads the page", t0, rung_figures(visit), notes)
    return visit


def _closing_warnings(run: LadderRun, ev: Evidence) -> None:
    """What the whole run saw that no rung says: error statuses, dropped Server-Timing,
    a proxy whose hop was not measured."""
    # The cheap request asks for a missing page on purpose.
    statuses = sorted({r.status for r in run.records if r.status >= 400 and r.series != "cheap"})
    if statuses:
        run.warnings.append(f"the server answered with error statuses: {statuses}")
    dropped = dropped_note(run.records)
    if dropped is not None:
        run.warnings.append(dropped)
    if (
        ev.proxy_server
        and ev.direct is None
        and not any(metric_desc(r, "conn") for r in run.records)
    ):
        run.warnings.append(
            f"a proxy answered ({ev.proxy_server}); rerun with --direct URL-of-the-app to "
            "measure its hop"
        )

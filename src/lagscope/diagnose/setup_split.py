"""The setup-vs-app rung, for a server that reports no timing of its own.

Cheap requests for a page that does not exist wait for what every request (or connection)
pays but do none of the page's work (trusted only when the server answers them differently
from the page). When the server closes every connection, fresh connections also send their
request's first byte and then stay idle before the rest: a cost paid while the connection
is set up, or for its first bytes, is absorbed by the idle time; the app's time (which
needs the whole request) is not.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urljoin

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import SetupSplit, figure, summary_of
from lagscope.diagnose.model import Figure
from lagscope.diagnose.traffic import in_order, single
from lagscope.probe.model import RequestRecord
from lagscope.probe.options import parse_url

__all__ = ["CHEAP_PATH", "setup_split"]

# The page the cheap request asks for: one no app serves, so it does (almost) no work.
CHEAP_PATH = "/.lagscope-missing-page"
# The idle time outlasts the suspected tax (the whole wait at most) by this factor and
# margin, so a cost paid while the connection is set up is over before the request is sent.
_IDLE_FACTOR = 1.5
_IDLE_MARGIN_S = 0.02


def setup_split(run: LadderRun, wait_ms: float, keep_alive: bool) -> SetupSplit:
    t0 = run.start("setup vs app")
    plan = run.plan
    target = parse_url(urljoin(run.probe.target.url, CHEAP_PATH))
    cheap_client = run.client(replace(run.probe, target=target))
    idle: list[RequestRecord] = []
    cheap: list[RequestRecord] = []
    cheap_reused: list[RequestRecord] = []
    idle_s = min(plan.split_idle_max_s, wait_ms * _IDLE_FACTOR / 1000 + _IDLE_MARGIN_S)
    if keep_alive:
        cheap_reused = in_order(
            run, cheap_client, plan.split_samples + 1, "cheap", "setup vs app: cheap"
        )
    else:
        client = run.client()
        idle = [
            single(run, client, "idle_first", "setup vs app: after idle", i, hold_s=idle_s)[0]
            for i in range(plan.split_samples)
        ]
        cheap = [
            single(run, cheap_client, "cheap", "setup vs app: cheap request", i)[0]
            for i in range(plan.split_samples)
        ]
        idle = run.keep(idle)
        cheap = run.keep(cheap)
    split = SetupSplit(
        round(idle_s * 1000, 3) if idle else 0.0,
        tuple(idle),
        CHEAP_PATH,
        tuple(cheap),
        tuple(cheap_reused),
    )
    statuses = sorted({r.status for r in cheap + cheap_reused})
    run.done(
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

"""The run's first request, to the URL as given, and the redirects followed from it.

It is sent before anything else touches the app, so a freshly started server answers it
first (the warm-up rung keeps it). A redirect this tool cannot or may not follow (a
Location that is not an http(s) URL, another host, a hop that does not answer, a loop, more
than :data:`MAX_REDIRECTS`) ends the following: the rest of the run diagnoses the last
response that answered, and a warning names the redirect. The server's string never
decides the exit code.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urljoin

from lagscope.diagnose.context import LadderRun, shown
from lagscope.diagnose.evidence import RedirectHop
from lagscope.diagnose.model import Figure
from lagscope.diagnose.traffic import single
from lagscope.errors import LagscopeError
from lagscope.probe.model import RequestRecord
from lagscope.probe.options import ProbeOptions, is_loopback_host, parse_url

__all__ = ["MAX_REDIRECTS", "REDIRECTS", "first_and_redirects"]

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


def first_and_redirects(run: LadderRun) -> tuple[RequestRecord, tuple[RedirectHop, ...]]:
    """The first request's record and the hops followed; ``run.probe`` ends on the last
    URL that answered."""
    t0 = run.start("first request")
    hops: list[RedirectHop] = []
    first: RequestRecord | None = None
    probe = run.probe
    seen = {probe.target.url}
    while True:
        try:
            record, ex = single(run, run.client(probe), "first", "the first request")
        except LagscopeError as exc:
            if first is None:
                raise  # the URL as given: its failure is the run's
            run.warnings.append(
                f"the redirect to {shown(probe.target.url)} could not be followed "
                f"({exc.one_line()}); diagnosing the redirect itself"
            )
            run.redirect_stop = "no answer"
            break  # run.probe is still the last URL that answered
        run.keep([record])
        if first is None:
            first = record
        run.probe = probe  # this URL answered: the rest of the run may measure it
        location = dict(ex.headers).get("location")
        if ex.status not in REDIRECTS or not location:
            break
        stop = _next_hop(run, probe, location, len(hops), seen)
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
    run.done("first request", "The run's first request", t0, figures)
    return first, tuple(hops)


def _next_hop(
    run: LadderRun, probe: ProbeOptions, location: str, followed: int, seen: set[str]
) -> ProbeOptions | str:
    """The options for the next hop, or (not followed) the Location as shown, with a
    warning saying why."""
    where = shown(location)
    try:
        nxt = parse_url(urljoin(probe.target.url, location))
    except (ValueError, LagscopeError) as exc:
        reason = exc.one_line() if isinstance(exc, LagscopeError) else str(exc)
        run.warnings.append(
            f"the redirect's Location {where} is not a URL this tool can follow "
            f"({shown(reason, 120)}); diagnosing the redirect itself"
        )
        run.redirect_stop = "bad location"
        return where
    if nxt.url in seen:
        run.warnings.append(
            f"redirect loop: {shown(nxt.url)} was already visited; diagnosing the redirect itself"
        )
        run.redirect_stop = "loop"
        return nxt.url
    if followed >= MAX_REDIRECTS:
        run.warnings.append(
            f"too many redirects: still redirecting after {followed} (to "
            f"{shown(nxt.url)}); diagnosing the last one"
        )
        run.redirect_stop = "too many"
        return nxt.url
    if not (nxt.host == probe.target.host or is_loopback_host(nxt.host)):
        run.warnings.append(
            f"the URL redirects to another host ({shown(nxt.host)}); diagnosing the redirect itself"
        )
        return nxt.url
    return replace(probe, target=nxt)

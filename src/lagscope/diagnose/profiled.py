"""The profile rung: the URL asked for again with ``X-Lagscope-Profile: 1``, only when the
steady-state responses carry lagscope's trusted Server-Timing detail (the server trusts
this client). What the profile adds to a finding is :mod:`lagscope.diagnose.profiling`'s."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import ProfileProbe, trusted_detail
from lagscope.diagnose.model import Figure
from lagscope.diagnose.profiling import REASON_LINES, UNTRUSTED_LINE
from lagscope.instrument.profile import (
    PROFILE_HEADER,
    REQUEST_VALUE,
    Profile,
    ProfileError,
    parse_header,
)
from lagscope.probe.model import RequestRecord
from lagscope.probe.runner import make_record

__all__ = ["profile"]

TITLE = "A profiled request (X-Lagscope-Profile: 1)"
# The first may pay the server's one-time import of the profiler, so a second is sent on
# the same connection when the run has time; the second's profile is used.
_REQUESTS = 2
_NO_HEADER = (
    "No profile: the server answered without one (lagscope's middleware older than profile "
    "mode, or a proxy dropped the header)."
)


def profile(run: LadderRun, seen: Sequence[RequestRecord]) -> ProfileProbe:
    """Ask the server for a profile of this URL, only when ``seen`` (the steady-state
    responses) carry lagscope's trusted Server-Timing detail."""
    if not seen or not all(trusted_detail(r) for r in seen):
        run.skip("profile", TITLE, "the server's Server-Timing is not detailed")
        return ProfileProbe(0, None, UNTRUSTED_LINE)
    t0 = run.start("profile")
    probe = replace(run.probe, headers=(*run.probe.headers, (PROFILE_HEADER, REQUEST_VALUE)))
    client = run.client(probe)
    records: list[RequestRecord] = []
    got: Profile | None = None
    reason: str | None = None
    conn = client.open("the profiled request")
    try:
        for index in range(_REQUESTS):
            if index and (run.left_s() <= 0 or not records[-1].keep_alive):
                break
            start = run.clock.now_ns()
            ex = client.exchange(conn, "the profiled request")
            records.append(
                make_record("profile", index, conn, index == 0, ex, start, run.run_start)
            )
            value = dict(ex.headers).get(PROFILE_HEADER.lower())
            if value is None:
                got, reason = None, _NO_HEADER
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
    run.keep(records)
    figures: list[Figure] = [Figure("requests", len(records))]
    if got is not None:
        figures.append(Figure("profiled_ms", got.duration_ms, "ms"))
        figures.append(Figure("frames", len(got.frames)))
    request_ms = records[-1].total_ms if records else None
    run.done("profile", TITLE, t0, figures, () if reason is None else (reason,))
    return ProfileProbe(len(records), got, reason, request_ms)

"""What a profiled request adds to the app's findings (``slow-app``, ``many-queries``). Pure.

The ladder sends the profiled requests (:class:`~lagscope.diagnose.evidence.ProfileProbe`);
here the server's answer becomes the finding's
:class:`~lagscope.diagnose.model.FindingProfile`: one line saying what was profiled or why
there is no profile, the hotspots of the app's own code with their ms and share and the
library frames they spend in, and the frames for the chart.
"""

from __future__ import annotations

from dataclasses import replace

from lagscope.diagnose.evidence import Evidence, ProfileProbe
from lagscope.diagnose.model import Figure, Finding, FindingProfile
from lagscope.instrument.profile import Hotspot, Reason, hotspots

__all__ = [
    "PROFILED_FINDINGS",
    "REASON_LINES",
    "UNTRUSTED_LINE",
    "finding_profile",
    "spot_line",
    "with_profile",
]

# The findings whose evidence a profile completes; the ladder profiles when one is found.
PROFILED_FINDINGS = ("slow-app", "many-queries")

# The server's reason (docs/server-timing.md, "Profile mode") as the finding's one line.
REASON_LINES: dict[Reason, str] = {
    "off": "No profile: the server's profile mode is off; set LAGSCOPE['PROFILE'] = True "
    "(WSGI: profile=True) or run with DEBUG.",
    "no-pyinstrument": "No profile: the server lacks the profile extra; install "
    '"lagscope[profile]" (pyinstrument) where the app runs.',
    "busy": "No profile: another profiler would not let lagscope's start on the server.",
    "async": "No profile: the view runs under ASGI, on threads the profiler does not follow; "
    "profile it under WSGI (lagscope serve, waitress).",
    "failed": "No profile: the server failed to build one (its lagscope logger says why).",
}
UNTRUSTED_LINE = (
    "No profile: the server does not send lagscope's detailed Server-Timing to this client "
    "(not lagscope's Django or WSGI middleware, or a client it does not trust), so no "
    "profile was asked for."
)


def finding_profile(probe: ProfileProbe) -> FindingProfile:
    """The finding's profile part: what the profile shows, or the one line why not."""
    profile = probe.profile
    if profile is None:
        return FindingProfile(note=probe.reason or "No profile.")
    spots = hotspots(profile)
    seen = f"{probe.requests} profiled request{'s' if probe.requests != 1 else ''}"
    note = (
        f"Profiled with pyinstrument ({seen}; the profiled request took "
        f"{profile.duration_ms:.0f} ms in the app, profiler included)."
    )
    if not spots:
        note += " No frame of the app's own code holds 5 % of it."
    return FindingProfile(note, profile.duration_ms, spots, profile.frames)


def spot_line(h: Hotspot) -> str:
    """One hotspot as the terminal and HTML show it."""
    text = f"{h.function} ({h.where}) {h.ms:.0f} ms, {h.share:.0%} of the profile"
    if h.spends_in:
        text += ", in " + " → ".join(h.spends_in)
    return text


def with_profile(finding: Finding, ev: Evidence) -> Finding:
    """``finding`` with what the profile shows (or why there is none), when one was asked."""
    if ev.profile is None:
        return finding
    part = finding_profile(ev.profile)
    fix, evidence = finding.fix, finding.evidence
    if part.hotspots:
        top = part.hotspots[0]
        fix = (
            f"Start with {top.function} ({top.where}): {top.ms:.0f} ms, {top.share:.0%} of "
            "the profiled request.",
            *fix,
        )
        evidence = (
            *evidence,
            Figure("profiled_hotspot", f"{top.function} ({top.where})"),
            Figure("profiled_hotspot_ms", top.ms, "ms"),
            Figure("profiled_hotspot_share", top.share),
            Figure("profiled_hotspot_spends_in", " → ".join(top.spends_in) or None),
        )
    return replace(finding, profile=part, fix=fix, evidence=evidence)

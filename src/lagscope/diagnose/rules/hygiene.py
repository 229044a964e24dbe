"""HTTP hygiene: ``redirects``, ``uncompressed-text`` and ``large-payload``. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
)
from lagscope.diagnose.model import Figure, Finding, Severity
from lagscope.diagnose.rules.common import (
    make_finding,
)
from lagscope.diagnose.rules.outside import held_transfer_ms
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["large_payload", "redirects", "uncompressed_text"]


def redirects(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or not hy.redirects:
        return None
    cost = sum(h.ms for h in hy.redirects)
    if hy.redirect_stop is not None:
        return _redirects_unfinished(ev, t, cost, hy.redirect_stop)
    if cost < t.redirect_ms:
        return None
    return make_finding(
        ev,
        t,
        "redirects",
        f"The URL redirects {len(hy.redirects)} time(s) before the answer",
        cost,
        "every request",
        [Figure(f"{h.status} {h.url}", round(h.ms, 3), "ms") for h in hy.redirects],
        [
            f"Link to the final URL ({hy.redirects[-1].location}); for Django's APPEND_SLASH, "
            "write URLs with the trailing slash."
        ],
        "Each redirect costs a full round trip before the real request starts.",
        severity="warning",
    )


def _redirects_unfinished(ev: Evidence, t: Thresholds, cost: float, stop: str) -> Finding:
    """The chain never reached a page here. Linking to "the final URL" would be no advice:
    there is none, or it cannot be reached."""
    hy = ev.hygiene
    assert hy is not None
    last = hy.redirects[-1].location
    chain = " -> ".join([hy.redirects[0].url, *(h.location for h in hy.redirects)])
    if stop in ("loop", "too many"):
        title = (
            "The URL redirects in a loop: no page is ever answered"
            if stop == "loop"
            else f"The URL still redirects after {len(hy.redirects)} redirects: too many"
        )
        fix = (
            f"Fix the redirects so that they end on a page ({chain}); a browser stops with "
            "'too many redirects' (ERR_TOO_MANY_REDIRECTS)."
        )
        severity: Severity = "critical"
    elif stop == "bad location":
        title = f"The URL redirects to a Location that is not a valid http(s) URL: {last}"
        fix = (
            "Send Location as an absolute http(s) URL or a valid relative reference "
            "(RFC 9110 section 10.2.2, RFC 3986): no spaces, no other schemes; clients "
            "repair some of these and refuse others."
        )
        severity = "warning"
    else:
        title = f"The URL redirects to {last}, which does not answer"
        fix = f"Point the redirect at a server that answers ({chain})."
        severity = "critical"
    return make_finding(
        ev,
        t,
        "redirects",
        title,
        cost,
        "every request",
        [Figure(f"{h.status} {h.url}", round(h.ms, 3), "ms") for h in hy.redirects],
        [fix],
        "Each redirect costs a full round trip, and this chain never reaches an answer.",
        severity=severity,
    )


_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "+json",
    "+xml",
    "image/svg",
)


def _own_receive_ms(receive_ms: float, found: Sequence[Finding]) -> tuple[float, str]:
    """The body's arrival without what something on the way held it (claimed by
    ``outside-app-every-request``), and a sentence saying so when it did."""
    held = held_transfer_ms(found)
    if not held:
        return receive_ms, ""
    return max(0.0, receive_ms - held), (
        f" The {held:.0f} ms something on the way held the body is counted in "
        "outside-app-every-request."
    )


def uncompressed_text(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or hy.compressed_bytes is None or hy.content_encoding:
        return None
    ctype = (hy.content_type or "").lower()
    if not any(k in ctype for k in _TEXT_TYPES):
        return None
    saving = hy.body_bytes - hy.compressed_bytes
    if saving < t.compress_min_saving_bytes or saving < t.compress_min_saving_share * hy.body_bytes:
        return None
    receive_ms, note = _own_receive_ms(hy.receive_ms, found)
    cost = receive_ms * saving / max(1, hy.body_bytes)
    return make_finding(
        ev,
        t,
        "uncompressed-text",
        f"{hy.body_bytes / 1000:.0f} KB of text sent uncompressed",
        cost,
        "every request",
        [
            Figure("body_bytes", hy.body_bytes, "B"),
            Figure("gzip_bytes", hy.compressed_bytes, "B"),
            Figure("receive_ms", round(hy.receive_ms, 3), "ms"),
        ],
        [
            "Compress at the proxy (nginx: gzip on; gzip_types application/json text/css ...) "
            "or in Django with GZipMiddleware; on loopback it buys nothing."
        ],
        f"gzip would save {saving / 1000:.0f} KB ({saving / hy.body_bytes:.0%}); over this "
        f"link that is {cost:.1f} ms, more on a slow network.{note}",
        severity="warning" if cost >= t.large_payload_ms else "info",
    )


def large_payload(ev: Evidence, t: Thresholds, found: Sequence[Finding]) -> Finding | None:
    hy = ev.hygiene
    if hy is None or hy.body_bytes < t.large_payload_bytes:
        return None
    receive_ms, note = _own_receive_ms(hy.receive_ms, found)
    return make_finding(
        ev,
        t,
        "large-payload",
        f"The response is large ({hy.body_bytes / 1000:.0f} KB)",
        receive_ms,
        "every request",
        [
            Figure("body_bytes", hy.body_bytes, "B"),
            Figure("receive_ms", round(hy.receive_ms, 3), "ms"),
        ],
        ["Paginate, or send only the fields the client uses."],
        note.strip(),
        severity="warning" if receive_ms >= t.large_payload_ms else "info",
    )

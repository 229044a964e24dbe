"""Time a response's body spends arriving over loopback beyond what its size takes. Pure.

A body the server sized before sending (``Content-Length``) exists whole when its head
leaves, and loopback carries it at hundreds of MB/s: a 1 MB body arrives in a few ms. When
it takes far longer on every request, reused connections too, something between the client
and the app holds the stream (security software that inspects each response, in proportion
to its size). A streamed body without a size may be slow because the app is still making it;
that stays the transfer's, unnamed (``unexplained-time``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lagscope.diagnose.rules.common import lower_quartile, median
from lagscope.diagnose.thresholds import Thresholds
from lagscope.probe.model import RequestRecord

__all__ = ["HeldTransfer", "held_transfer"]

# MB/s to bytes per ms.
_BYTES_PER_MB_PER_MS = 1000


@dataclass(frozen=True)
class HeldTransfer:
    """What a sized body's arrival took beyond its size at loopback speed (p50), what its
    size alone takes at that speed, and the rate it arrived at."""

    held_ms: float
    size_ms: float
    body_bytes: float
    rate_mb_s: float


def held_transfer(
    records: Sequence[RequestRecord], t: Thresholds, loopback: bool, stall_ms: float = 0.0
) -> HeldTransfer | None:
    """``records``: reused-connection requests. ``stall_ms``: a small-write stall already
    found, which is the transfer's own. None unless every request's body is held."""
    sized = [r for r in records if r.header("content-length") is not None]
    if not loopback or len(sized) < t.min_warm_requests or len(sized) < len(records):
        return None
    body = median([float(r.body_bytes) for r in sized])
    size_ms = body / (t.loopback_transfer_mb_s * _BYTES_PER_MB_PER_MS)
    receives = sorted(r.receive_ms for r in sized)
    held = median(receives) - size_ms - stall_ms
    # Every request, not a few slow ones: the lower quartile is held too.
    if held < t.outside_app_ms or lower_quartile(receives) - size_ms - stall_ms < t.outside_app_ms:
        return None
    rate = body / median(receives) / _BYTES_PER_MB_PER_MS
    return HeldTransfer(held, size_ms, body, rate)

"""Queue time from a front proxy's request-start header. Pure; the wall clock comes in.

The convention (Scout, New Relic, Sentry-Ruby, Heroku) is a header such as
``X-Request-Start: t=1700000000.123``. nginx produces it with
``proxy_set_header X-Request-Start "t=${msec}";`` (epoch seconds with a millisecond
fraction). Other proxies send integer milliseconds or microseconds since the epoch, with or
without the ``t=`` prefix. The unit is inferred from the magnitude, which is unambiguous
for any date between 2001 and 2286.
"""

from __future__ import annotations

import math

__all__ = ["parse_request_start", "queue_ms"]

# Epoch seconds are ~1.7e9 today; ms ~1.7e12; µs ~1.7e15. These bounds split the ranges
# with decades of margin on both sides.
_SECONDS_MAX = 1e11
_MILLIS_MAX = 1e14
_MICROS_MAX = 1e17


def parse_request_start(value: str) -> float | None:
    """Return the request start as epoch seconds, or None when the value is not usable."""
    text = value.strip()
    if text[:2] in ("t=", "T="):
        text = text[2:].strip()
    if not text or len(text) > 32:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    if number < _SECONDS_MAX:
        return number
    if number < _MILLIS_MAX:
        return number / 1e3
    if number < _MICROS_MAX:
        return number / 1e6
    return None


def queue_ms(value: str, now_epoch_s: float, max_queue_s: float) -> float | None:
    """Milliseconds between the proxy's request start and ``now_epoch_s``.

    Returns None when the header is unusable or the result is beyond ``max_queue_s`` (a
    clock that is hours off is not a queue). A small negative result, from clock skew
    between the proxy's host and ours, is reported as 0 rather than dropped: the queue was
    at most that skew.
    """
    start_s = parse_request_start(value)
    if start_s is None:
        return None
    waited_s = now_epoch_s - start_s
    if abs(waited_s) > max_queue_s:
        return None
    return max(waited_s, 0.0) * 1e3

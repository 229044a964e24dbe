"""The Server-Timing header: W3C grammar, parsing and formatting. Pure; no I/O.

Grammar (https://w3c.github.io/server-timing/#the-server-timing-header-field)::

    Server-Timing             = #server-timing-metric
    server-timing-metric      = metric-name *( OWS ";" OWS server-timing-param )
    metric-name               = token
    server-timing-param       = server-timing-param-name OWS "=" OWS server-timing-param-value
    server-timing-param-name  = token
    server-timing-param-value = token / quoted-string

Processing follows the spec's lenient rules, as browsers do: parameter names are
case-insensitive, only the first ``dur`` and the first ``desc`` count, an unparsable ``dur``
is 0, and a malformed metric is skipped without losing the metrics after it. Several
header lines mean the same as one line joined with commas.

The emitting side (the middlewares) uses :func:`format_header` so that the producer and the
parser can never disagree on quoting. What it emits is always pure ASCII and always valid
grammar, whatever the input: a header that a server cannot encode (waitress answers 500
for a value outside Latin-1) or that Django MIME-encodes (``=?utf-8?b?...?=``) would change
the response. So a ``desc`` is first made printable ASCII by :func:`escape_text`
(``\\`` for a backslash, ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN`` for anything else),
which :func:`unescape_text` reverses, and a non-finite ``dur`` is left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from lagscope.schemacheck import MAX_NUMBER

__all__ = [
    "Metric",
    "believable",
    "escape_text",
    "format_header",
    "format_metric",
    "parse",
    "parse_headers",
    "unescape_text",
]

# RFC 9110 tchar.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS = " \t"


@dataclass(frozen=True)
class Metric:
    """One server-timing-metric. ``dur_ms`` is None when the metric carried no ``dur``."""

    name: str
    dur_ms: float | None = None
    desc: str | None = None
    # Parameters other than dur/desc, lower-cased names, first occurrence wins.
    params: tuple[tuple[str, str], ...] = field(default=())


class _Cursor:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ows(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _OWS:
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        m = _TOKEN_RE.match(self.text, self.pos)
        if not m:
            return ""
        self.pos = m.end()
        return m.group(0)

    def quoted_string(self) -> str | None:
        """Parse a quoted-string at the cursor (which is on the opening quote)."""
        out: list[str] = []
        i = self.pos + 1
        text = self.text
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        # Unterminated: consume to the end, as browsers do, and keep what was read.
        self.pos = len(text)
        return "".join(out)

    def skip_to_next_metric(self) -> None:
        """Skip garbage up to the next top-level comma, stepping over quoted strings."""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == ",":
                return
            if ch == '"':
                self.quoted_string()
                continue
            self.pos += 1


def _parse_dur(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        return 0.0
    # inf/nan are not valid durations; the spec says unparsable means 0.
    return value if math.isfinite(value) else 0.0


def parse(value: str) -> tuple[Metric, ...]:
    """Parse one Server-Timing field value into metrics, in order."""
    cur = _Cursor(value)
    metrics: list[Metric] = []
    while cur.pos < len(cur.text):
        cur.skip_ows()
        if cur.peek() == ",":
            cur.pos += 1
            continue
        name = cur.token()
        if not name:
            cur.skip_to_next_metric()
            continue
        dur: float | None = None
        desc: str | None = None
        extra: dict[str, str] = {}
        seen: set[str] = set()
        broken = False
        while True:
            cur.skip_ows()
            if cur.peek() != ";":
                break
            cur.pos += 1
            cur.skip_ows()
            pname = cur.token().lower()
            if not pname:
                broken = True
                break
            cur.skip_ows()
            pvalue = ""
            if cur.peek() == "=":
                cur.pos += 1
                cur.skip_ows()
                if cur.peek() == '"':
                    pvalue = cur.quoted_string() or ""
                else:
                    pvalue = cur.token()
            if pname in seen:
                continue
            seen.add(pname)
            if pname == "dur":
                dur = _parse_dur(pvalue)
            elif pname == "desc":
                desc = pvalue
            else:
                extra[pname] = pvalue
        cur.skip_ows()
        if broken or cur.peek() not in ("", ","):
            # Trailing junk after a metric: keep what parsed cleanly, drop the rest of it.
            cur.skip_to_next_metric()
        metrics.append(Metric(name=name, dur_ms=dur, desc=desc, params=tuple(extra.items())))
    return tuple(metrics)


# Server-Timing durations carry 3 decimals; a dur equal to the client's time up to that
# rounding is still possible.
_ROUNDING_MS = 0.001


def believable(
    metrics: Sequence[Metric], exchange_ms: float
) -> tuple[tuple[Metric, ...], tuple[Metric, ...]]:
    """``metrics`` split into (kept, dropped): a ``dur`` below 0, or longer than the whole
    request/response exchange as the client measured it (``exchange_ms``, send to last
    byte), cannot be true of this response. The server did its work inside that exchange,
    so such a value is a broken or hostile header, and using it would give negative
    "unexplained" time, bars longer than the total, or sums that overflow (1e308). A dropped
    dur beyond the range of a saved number (:data:`lagscope.schemacheck.MAX_NUMBER`) is
    kept as the parameter ``dur`` (text), its ``dur_ms`` None."""
    kept: list[Metric] = []
    dropped: list[Metric] = []
    for m in metrics:
        d = m.dur_ms
        if d is None or 0.0 <= d <= exchange_ms + _ROUNDING_MS:
            kept.append(m)
        elif -MAX_NUMBER <= d <= MAX_NUMBER:
            dropped.append(m)
        else:
            # Beyond the range of a saved number: its text travels as a parameter.
            dropped.append(replace(m, dur_ms=None, params=(("dur", f"{d:.6g}"), *m.params)))
    if not dropped:
        return tuple(metrics), ()
    return tuple(kept), tuple(dropped)


def parse_headers(values: Iterable[str]) -> tuple[Metric, ...]:
    """Parse several Server-Timing header lines (as received) into one metric list."""
    out: list[Metric] = []
    for v in values:
        out.extend(parse(v))
    return tuple(out)


# Printable ASCII except the backslash: text that escape_text leaves alone.
_PLAIN_RE = re.compile(r"[ -\[\]-~]*")
_ESCAPE_RE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|\\)")


def _escape_char(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if " " <= c <= "~":
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(value: str) -> str:
    """``value`` as printable ASCII; :func:`unescape_text` gives it back exactly."""
    if _PLAIN_RE.fullmatch(value) is not None:
        return value
    return "".join(map(_escape_char, value))


def _unescape_match(m: re.Match[str]) -> str:
    text = m.group(0)
    return "\\" if text == "\\\\" else chr(int(text[2:], 16))


def unescape_text(value: str) -> str:
    """The inverse of :func:`escape_text` (for a parsed ``desc`` that lagscope wrote)."""
    return _ESCAPE_RE.sub(_unescape_match, value) if "\\" in value else value


def _quote(value: str) -> str:
    value = escape_text(value)
    if _TOKEN_RE.fullmatch(value) is not None:
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_metric(name: str, dur_ms: float | None = None, desc: str | None = None) -> str:
    """Format one metric. ``name`` must be a token; durations get 3 decimals (microseconds).

    ``desc`` may be any text (see :func:`escape_text`); a NaN or infinite ``dur_ms`` is
    left out rather than written as a number no reader accepts.
    """
    # One regex match: a per-character loop here was a third of the middleware's cost.
    if _TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"Server-Timing metric name must be a token: {name!r}")
    parts = [name]
    if dur_ms is not None and math.isfinite(dur_ms):
        parts.append(f"dur={dur_ms:.3f}")
    if desc is not None:
        parts.append(f"desc={_quote(desc)}")
    return ";".join(parts)


def format_header(metrics: Sequence[Metric]) -> str:
    """Format metrics as one Server-Timing field value."""
    return ", ".join(format_metric(m.name, m.dur_ms, m.desc) for m in metrics)

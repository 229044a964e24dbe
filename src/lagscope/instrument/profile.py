"""The compact request profile: its model, how a sampled call tree is cut down to it, its
wire form (the ``X-Lagscope-Profile`` response header) and the reading of it. Pure.

The middleware samples one request with pyinstrument (:mod:`.sampling`, the only part that
imports it), turns the call tree into :class:`RawFrame` values, and :func:`compact` keeps
what a reader needs: every frame of the app's own code, and of library code only the
frames where the time enters a library (the first frame under app code, the first frame of
each other package) and the leaves where it is spent. The rest of a library chain is
folded into the frame above it. Then the lightest frames go until at most
:data:`MAX_FRAMES` are left and the header fits :data:`MAX_HEADER_CHARS`.

Wire form (ASCII, one header line)::

    X-Lagscope-Profile: 1 <duration_us> <frame> <frame> ...
    <frame> = <parent>,<total_us>,<self_us>,<line>,<a|l>,<function>,<file>

``parent`` is ``-`` for a top frame or the index of an earlier frame; ``a`` marks the
app's own code, ``l`` library code; ``function`` and ``file`` are percent-encoded UTF-8
(only letters, digits and ``._/-`` stay as they are); ``line`` is the line of the frame
where most of its time went (0: unknown). A profile that was asked for and cannot be
given is ``none <reason>`` (:data:`REASONS`).

A profile comes from a server, so :func:`parse_header` treats it as hostile: the length,
the number of frames, every number (finite integers in range), the tree shape and the
decoded text (printable, no control characters, bounded) are checked, and anything else
is a :class:`ProfileError`. Names are text, never markup: renderers escape them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import quote, unquote

__all__ = [
    "MAX_FRAMES",
    "MAX_HEADER_CHARS",
    "PROFILE_HEADER",
    "REASONS",
    "REQUEST_VALUE",
    "Hotspot",
    "Profile",
    "ProfileError",
    "ProfileFrame",
    "RawFrame",
    "Reason",
    "compact",
    "encode_header",
    "hotspots",
    "parse_header",
    "reason_header",
]

# The request header that asks for a profile, with this value, and the response header
# that carries it. One name: the request asks with "1", the response answers in kind.
PROFILE_HEADER = "X-Lagscope-Profile"
REQUEST_VALUE = "1"

# Why a trusted client that asked got no profile:
#  off: profile mode is off (neither DEBUG nor LAGSCOPE['PROFILE']);
#  no-pyinstrument: the `profile` extra is not installed on the server;
#  busy: another profiler runs on this thread;
#  async: an async request (the view runs on threads the sampler does not follow);
#  failed: sampling or building the profile failed (the lagscope logger says why).
Reason = Literal["off", "no-pyinstrument", "busy", "async", "failed"]
REASONS: tuple[Reason, ...] = get_args(Reason)

# At most this many frames, and a header of at most this many characters: h11 (the probe's
# HTTP client) refuses response heads over 16 KiB, and the other headers need room.
MAX_FRAMES = 40
MAX_HEADER_CHARS = 6000
# A frame lighter than this share of the profile is dropped before the count limit.
MIN_SHARE = 0.005
# Names longer than this are cut (file paths from the left, keeping the file name).
MAX_FUNCTION_CHARS = 120
MAX_FILE_CHARS = 160
# Ranges a parsed profile must keep: durations up to an hour, lines below ten million.
MAX_US = 3_600_000_000
MAX_LINE = 9_999_999
# A reader refuses longer headers outright, before any parsing.
MAX_READ_CHARS = 8192

_VERSION = "1"
_SAFE = "._/-"
_TOKEN = r"[A-Za-z0-9._/%-]"
_FRAME = re.compile(
    r"(-|\d{1,2}),(\d{1,10}),(\d{1,10}),(\d{1,7}),([al]),"
    rf"({_TOKEN}{{1,{3 * 4 * MAX_FUNCTION_CHARS}}}),({_TOKEN}{{0,{3 * 4 * MAX_FILE_CHARS}}})"
)
_HEAD = re.compile(r"1 (\d{1,10})")


class ProfileError(ValueError):
    """A profile header that breaks the format; the message says what."""


@dataclass(frozen=True)
class RawFrame:
    """One node of a sampled call tree, before compaction; seconds.

    ``package`` is what a library boundary is judged by (the top-level package, or
    ``<built-in>``); ``line`` is the line where most of the frame's time went.
    """

    function: str
    file: str
    line: int
    app: bool
    package: str
    total_s: float
    children: tuple[RawFrame, ...] = ()


@dataclass(frozen=True)
class ProfileFrame:
    """One frame of a compact profile. ``parent`` is an index into the profile's frames
    (-1 for a top frame); ``self_ms`` is the time not in the frames shown below it."""

    function: str
    file: str
    line: int
    app: bool
    total_ms: float
    self_ms: float
    parent: int = -1

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Profile:
    """A compact profile: the sampled time and the frames, parents before children."""

    duration_ms: float
    frames: tuple[ProfileFrame, ...]

    def children(self, index: int) -> tuple[int, ...]:
        return tuple(i for i, f in enumerate(self.frames) if f.parent == index)


# --- compaction ------------------------------------------------------------------------------


@dataclass
class _Kept:
    """A frame that stays, with the time of every merged occurrence."""

    function: str
    file: str
    line: int
    app: bool
    total_s: float
    heaviest_s: float  # the heaviest merged occurrence, whose line is shown
    children: list[_Kept]


# Frames of this package (the middleware, the query hook) are never shown: their time
# stays in the frame above, and a library boundary is judged past them.
OWN_PACKAGE = "lagscope"


def _keep(raw: RawFrame, parent: RawFrame | None) -> bool:
    if raw.package == OWN_PACKAGE and not raw.app:
        return False
    if raw.app or parent is None or parent.app:
        return True
    return raw.package != parent.package or not raw.children


def _fold(
    raw: RawFrame, parent: RawFrame | None, out: list[_Kept], under_own: bool = False
) -> None:
    """Append to ``out`` the kept frames at or below ``raw`` (folding the others away),
    merging repeated calls of one function into one frame. Built-ins that lagscope's
    own frames call (its statement shapes' regular expressions) are its time too."""
    own = raw.package == OWN_PACKAGE and not raw.app
    if under_own and raw.package.startswith("<"):
        return
    if _keep(raw, parent):
        node = _Kept(raw.function, raw.file, raw.line, raw.app, raw.total_s, raw.total_s, [])
        for child in raw.children:
            _fold(child, raw, node.children)
        _add(out, node)
    else:
        for child in raw.children:
            _fold(child, parent if own else raw, out, own)


def _add(out: list[_Kept], node: _Kept) -> None:
    for other in out:
        if (other.function, other.file, other.app) == (node.function, node.file, node.app):
            other.total_s += node.total_s
            if node.heaviest_s > other.heaviest_s:
                other.line, other.heaviest_s = node.line, node.heaviest_s
            for child in node.children:
                _add(other.children, child)
            return
    out.append(node)


def _cut(text: str, limit: int, left: bool) -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3) :] if left else text[: limit - 3] + "..."


def _flatten(tops: Sequence[_Kept], chosen: set[int]) -> tuple[ProfileFrame, ...]:
    frames: list[ProfileFrame] = []

    def walk(node: _Kept, parent: int) -> None:
        if id(node) not in chosen:
            return
        index = len(frames)
        shown = [c for c in node.children if id(c) in chosen]
        total_ms = node.total_s * 1e3
        self_ms = max(0.0, total_ms - sum(c.total_s * 1e3 for c in shown))
        frames.append(
            ProfileFrame(
                _cut(node.function, MAX_FUNCTION_CHARS, left=False),
                _cut(node.file, MAX_FILE_CHARS, left=True),
                node.line if 0 <= node.line <= MAX_LINE else 0,
                node.app,
                round(total_ms, 3),
                round(self_ms, 3),
                parent,
            )
        )
        for child in sorted(shown, key=lambda c: -c.total_s):
            walk(child, index)

    for top in sorted(tops, key=lambda t: -t.total_s):
        walk(top, -1)
    return tuple(frames)


def compact(tops: Sequence[RawFrame], duration_s: float, max_frames: int = MAX_FRAMES) -> Profile:
    """The compact profile of a sampled call tree whose top frames are ``tops``."""
    kept: list[_Kept] = []
    for top in tops:
        _fold(top, None, kept)
    duration_s = max(duration_s, sum(t.total_s for t in tops), 0.0)
    floor_s = duration_s * MIN_SHARE
    # Heaviest first; a parent is never lighter than its child, so taking them in this
    # order keeps the tree closed (a tie is broken by depth, parents first).
    order: list[tuple[float, int, _Kept, _Kept | None]] = []

    def collect(node: _Kept, depth: int, parent: _Kept | None) -> None:
        order.append((node.total_s, depth, node, parent))
        for child in node.children:
            collect(child, depth + 1, node)

    for node in kept:
        collect(node, 0, None)
    order.sort(key=lambda item: (-item[0], item[1]))
    chosen: set[int] = set()
    for total_s, _depth, node, parent in order:
        if len(chosen) >= max_frames or (total_s < floor_s and chosen):
            break
        if parent is None or id(parent) in chosen:
            chosen.add(id(node))
    profile = Profile(round(duration_s * 1e3, 3), _flatten(kept, chosen))
    # Drop the lightest leaves until the header fits.
    while len(encode_header(profile)) > MAX_HEADER_CHARS and profile.frames:
        profile = _without_lightest_leaf(profile)
    return profile


def _without_lightest_leaf(profile: Profile) -> Profile:
    frames = profile.frames
    parents = {f.parent for f in frames}
    leaves = [i for i in range(len(frames)) if i not in parents]
    drop = min(leaves, key=lambda i: frames[i].total_ms)
    out: list[ProfileFrame] = []
    for i, f in enumerate(frames):
        if i == drop:
            continue
        parent = f.parent if f.parent < drop else f.parent - 1
        out.append(ProfileFrame(f.function, f.file, f.line, f.app, f.total_ms, f.self_ms, parent))
    if frames[drop].parent >= 0:
        p = frames[drop].parent
        old = out[p]
        out[p] = ProfileFrame(
            old.function,
            old.file,
            old.line,
            old.app,
            old.total_ms,
            round(old.self_ms + frames[drop].total_ms, 3),
            old.parent,
        )
    return Profile(profile.duration_ms, tuple(out))


# --- wire form ---------------------------------------------------------------------------------


def _us(ms: float) -> int:
    return min(max(round(ms * 1e3), 0), MAX_US)


def encode_header(profile: Profile) -> str:
    """The ``X-Lagscope-Profile`` value of ``profile`` (ASCII, no spaces inside a frame)."""
    parts = [_VERSION, str(_us(profile.duration_ms))]
    for f in profile.frames:
        parent = "-" if f.parent < 0 else str(f.parent)
        function = quote(f.function, safe=_SAFE) or "%3F"
        parts.append(
            f"{parent},{_us(f.total_ms)},{_us(f.self_ms)},{f.line},{'a' if f.app else 'l'},"
            f"{function},{quote(f.file, safe=_SAFE)}"
        )
    return " ".join(parts)


def reason_header(reason: Reason) -> str:
    """The ``X-Lagscope-Profile`` value saying why no profile was given."""
    return f"none {reason}"


def _text(encoded: str, limit: int, what: str) -> str:
    try:
        text = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise ProfileError(f"{what} is not UTF-8") from None
    if len(text) > limit:
        raise ProfileError(f"{what} is longer than {limit} characters")
    if not text.isprintable():
        raise ProfileError(f"{what} has control or unprintable characters")
    return text


def parse_header(value: str) -> Profile | Reason:
    """A profile, or the server's reason for not giving one. Raises :class:`ProfileError`."""
    if len(value) > MAX_READ_CHARS:
        raise ProfileError(f"the profile header is longer than {MAX_READ_CHARS} characters")
    parts = value.strip().split(" ")
    if len(parts) == 2 and parts[0] == "none":
        reason = parts[1]
        for known in REASONS:
            if reason == known:
                return known
        raise ProfileError("the profile header gives an unknown reason")
    head = _HEAD.fullmatch(" ".join(parts[:2]))
    if head is None:
        raise ProfileError("the profile header does not start with version 1 and a duration")
    duration_us = int(head.group(1))
    if duration_us > MAX_US:
        raise ProfileError("the profile's duration is out of range")
    body = parts[2:]
    if len(body) > MAX_FRAMES:
        raise ProfileError(f"the profile has more than {MAX_FRAMES} frames")
    frames: list[ProfileFrame] = []
    child_us = [0] * len(body)
    total_of = [0] * len(body)
    top_us = 0
    for index, token in enumerate(body):
        m = _FRAME.fullmatch(token)
        if m is None:
            raise ProfileError(f"profile frame {index} is malformed")
        parent = -1 if m.group(1) == "-" else int(m.group(1))
        total_us, self_us, line = int(m.group(2)), int(m.group(3)), int(m.group(4))
        if parent >= index:
            raise ProfileError(f"profile frame {index} names a parent that does not precede it")
        if total_us > MAX_US or self_us > total_us:
            raise ProfileError(f"profile frame {index} has times out of range")
        if parent >= 0:
            child_us[parent] += total_us
            # Times are rounded to the microsecond one by one: allow one.
            if total_us > total_of[parent] + 1:
                raise ProfileError(f"profile frame {index} is longer than its parent")
        else:
            top_us += total_us
        total_of[index] = total_us
        frames.append(
            ProfileFrame(
                _text(m.group(6), MAX_FUNCTION_CHARS, f"profile frame {index}'s function"),
                _text(m.group(7), MAX_FILE_CHARS, f"profile frame {index}'s file"),
                line,
                m.group(5) == "a",
                total_us / 1e3,
                self_us / 1e3,
                parent,
            )
        )
    # Each time is rounded to the microsecond on the server: allow that much per frame.
    slack = len(body) + 1
    for index, f in enumerate(frames):
        if child_us[index] + round(f.self_ms * 1e3) > total_of[index] + slack:
            raise ProfileError(f"profile frame {index}'s parts exceed its time")
    if top_us > duration_us + slack:
        raise ProfileError("the profile's frames exceed its duration")
    return Profile(duration_us / 1e3, tuple(frames))


# --- reading a profile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hotspot:
    """A frame of the app's own code and the time it holds itself: its time without the
    app frames below it (so a view that only calls a slow helper holds nothing, the helper
    everything). ``spends_in``: the library frames along its heaviest path, outermost
    first, as ``function (file)``."""

    function: str
    file: str
    line: int
    ms: float
    share: float
    spends_in: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


def _app_below(profile: Profile, index: int) -> Iterable[int]:
    """The nearest app frames below ``index``."""
    for child in profile.children(index):
        if profile.frames[child].app:
            yield child
        else:
            yield from _app_below(profile, child)


def _library_path(profile: Profile, index: int, limit: int) -> tuple[str, ...]:
    path: list[str] = []
    at = index
    while len(path) < limit:
        below = [c for c in profile.children(at) if not profile.frames[c].app]
        if not below:
            break
        at = max(below, key=lambda c: profile.frames[c].total_ms)
        f = profile.frames[at]
        path.append(f"{f.function} ({f.file})" if f.file else f.function)
    return tuple(path)


def hotspots(profile: Profile, limit: int = 3, min_share: float = 0.05) -> tuple[Hotspot, ...]:
    """The app frames holding the most time, heaviest first (at least ``min_share``)."""
    whole_ms = profile.duration_ms or sum(f.total_ms for f in profile.frames if f.parent < 0)
    if whole_ms <= 0:
        return ()
    out: list[Hotspot] = []
    for index, f in enumerate(profile.frames):
        if not f.app:
            continue
        held_ms = f.total_ms - sum(profile.frames[c].total_ms for c in _app_below(profile, index))
        held_ms = max(held_ms, 0.0)
        if held_ms / whole_ms < min_share:
            continue
        out.append(
            Hotspot(
                f.function,
                f.file,
                f.line,
                round(held_ms, 3),
                round(min(held_ms / whole_ms, 1.0), 4),
                _library_path(profile, index, 4),
            )
        )
    out.sort(key=lambda h: -h.ms)
    return tuple(out[:limit])

"""Sampling one request with pyinstrument (the ``profile`` extra): the only module that
imports it, and only when a trusted client asks for a profile.

:class:`Sampler` starts pyinstrument on the calling thread, and on stop turns the call
tree below the frame that started it into :class:`~.profile.RawFrame` values for
:func:`~.profile.compact`. Code of the Python installation and of installed packages is
library code (pyinstrument's rule), and so is lagscope's own; everything else is the
app's. A frame's line is the line where most of its time went (pyinstrument records the
executing line of every sample).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lagscope.instrument.profile import (
    PROFILE_HEADER,
    REQUEST_VALUE,
    Profile,
    RawFrame,
    Reason,
    compact,
    encode_header,
    reason_header,
)

if TYPE_CHECKING:
    from pyinstrument.frame import Frame

__all__ = ["INTERVAL_S", "PROFILE_KEY", "Sampler", "available", "finish_profile", "start_profile"]

# The environ (Django META) key of the request header that asks for a profile.
PROFILE_KEY = "HTTP_" + PROFILE_HEADER.upper().replace("-", "_")

# pyinstrument's default: 1 ms between samples; its cost is paid only on profiled requests.
INTERVAL_S = 0.001
# lagscope's own package directory: its frames (the middleware) are library code.
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_BUILTIN = "<built-in>"
_THIS_FILE = os.path.abspath(__file__)


@functools.cache
def available() -> bool:
    """Whether pyinstrument can be imported (imported once, on the first profiled request)."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


def _hot_line(frame: Frame) -> int:
    best, best_s = frame.line_no or 0, -1.0
    for key, seconds in frame.attributes.items():
        if key.startswith("l") and key[1:].isdigit() and seconds > best_s:
            best, best_s = int(key[1:]), seconds
    return best


def _package(short: str) -> str:
    if short.startswith("<frozen"):
        return "<frozen>"
    if short.startswith("<"):
        return short
    head = short.replace("\\", "/").lstrip("/").split("/", 1)[0]
    return head.removesuffix(".py")


def _raw(frame: Frame) -> RawFrame | None:
    """The tree below ``frame`` without pyinstrument's synthetic frames (their time stays
    in the parent's total) and without pyinstrument's own."""
    if frame.is_synthetic:
        return None
    path = frame.file_path or ""
    if f"{os.sep}pyinstrument{os.sep}" in path or path == _THIS_FILE:
        return None
    short = frame.file_path_short or path
    own = path.startswith(_OWN_DIR)
    children = tuple(c for c in (_raw(child) for child in frame.children) if c is not None)
    class_name = frame.class_name
    function = f"{class_name}.{frame.function}" if class_name else frame.function
    if own:
        short = "lagscope/" + path[len(_OWN_DIR) :].replace(os.sep, "/")
    return RawFrame(
        function=function,
        file=_BUILTIN if path == _BUILTIN else short,
        line=_hot_line(frame),
        app=frame.is_application_code and not own,
        package="lagscope" if own else _package(short),
        total_s=frame.time,
        children=children,
    )


class Sampler:
    """pyinstrument on this thread, from :meth:`start` to :meth:`stop`.

    The caller of :meth:`start` is the top of the tree: its callees become the profile's
    top frames.
    """

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        from pyinstrument import Profiler

        # "disabled": sample this thread only, and let nested profilers coexist (a user's
        # own pyinstrument middleware) instead of refusing.
        self._profiler: Any = Profiler(interval=interval_s, async_mode="disabled")

    def __repr__(self) -> str:
        return f"<Sampler running={self._profiler.is_running}>"

    def start(self, caller: Any = None) -> None:
        """Start sampling; ``caller`` (a frame, default: the caller of this method) is
        the top of the tree."""
        self._profiler.start(caller_frame=caller if caller is not None else sys._getframe(1))

    def stop(self) -> Profile:
        session = self._profiler.stop()
        root = session.root_frame()
        tops: list[RawFrame] = []
        if root is not None:
            for child in root.children:
                raw = _raw(child)
                if raw is not None:
                    tops.append(raw)
        return compact(tops, session.duration)


def start_profile(environ: Mapping[str, Any], allowed: bool) -> Sampler | Reason | None:
    """For a trusted request: None when it does not ask for a profile, a running
    :class:`Sampler` (whose top is the caller of this function), or why not."""
    if environ.get(PROFILE_KEY) != REQUEST_VALUE:
        return None
    if not allowed:
        return "off"
    if not available():
        return "no-pyinstrument"
    try:
        sampler = Sampler()
        sampler.start(sys._getframe(1))
    except RuntimeError:
        return "busy"
    return sampler


def finish_profile(state: Sampler | Reason, failed: Callable[[str], None]) -> str:
    """The response header value: the profile, or the reason there is none. ``failed``
    logs a failure (the middleware's :class:`~.entry.FailureLog`)."""
    if isinstance(state, str):
        return reason_header(state)
    try:
        return encode_header(state.stop())
    except Exception:
        failed("profiling")
        return reason_header("failed")

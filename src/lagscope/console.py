"""What reaches a console: control characters escaped, and ASCII stand-ins instead of a crash.

Strings from a server or a loaded file (a Location, a Content-Type, a Server-Timing
``desc``, any string in a saved JSON) may hold terminal control sequences: OSC 0 sets the
window title, OSC 52 writes the clipboard, DCS and CSI drive the terminal. :func:`printable`
shows every control character as its escape (``\\x1b``, ``\\x9b``, ``\\u202e``), so the sequence
is text and nothing is interpreted; every renderer for a terminal and every line written to
stderr passes server strings through it.

On Windows, output redirected to a file or a pipe (``> out.txt``, ``| findstr``) is encoded
with the ANSI code page, cp1252 in the West, which has no ``→``, ``−`` or box-drawing
characters; Python's default is then a UnicodeEncodeError in the middle of a report. While
a command runs, :func:`fitted_streams` gives stdout and stderr an error handler that writes
a readable ASCII stand-in (``->``, ``-``, ``u``, ``|``) for each character the stream's
encoding lacks, so every renderer stays correct without knowing the console. UTF-8 streams
are left alone: nothing is replaced where nothing needs to be.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO, cast

__all__ = [
    "ERROR_HANDLER",
    "PrintableStream",
    "ascii_stand_in",
    "fitted_streams",
    "keep_stderr_printable",
    "printable",
]

# C0 controls, DEL and C1 controls (ESC-led and 8-bit CSI/OSC/DCS/ST alike), and the
# bidirectional overrides and isolates that reorder what a line appears to say.
_CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROLS += [0x2028, 0x2029]  # line and paragraph separators: a new line to some terminals
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _CONTROLS}


def printable(text: str, keep: str = "") -> str:
    """``text`` with every control character shown as its escape; those in ``keep`` (a
    newline or a tab, where the layout has room for one) stay."""
    if text.isprintable():
        return text
    table = _ESCAPES if not keep else {k: v for k, v in _ESCAPES.items() if chr(k) not in keep}
    return text.translate(table)


ERROR_HANDLER = "lagscope.ascii_stand_in"

_STAND_INS = {
    "→": "->",
    "←": "<-",
    "↔": "<->",
    "⇒": "=>",
    "−": "-",
    "–": "-",
    "—": "--",
    "µ": "u",
    "μ": "u",
    "…": "...",
    "±": "+/-",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
    "≈": "~",
    "×": "x",
    "÷": "/",
    "·": ".",
    "•": "*",
    "✓": "ok",
    "✔": "ok",
    "✗": "x",
    "✘": "x",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "²": "2",
    "³": "3",
    "½": "1/2",
    "°": "deg",
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
}


def _box(char: str) -> str | None:
    code = ord(char)
    if 0x2500 <= code <= 0x257F:  # box drawing: rich's table rules and borders
        import unicodedata  # here: only a console that cannot show a character needs it

        name = unicodedata.name(char, "")
        if "HORIZONTAL" in name and "VERTICAL" not in name:
            return "-"
        if "VERTICAL" in name and "HORIZONTAL" not in name:
            return "|"
        return "+"
    if 0x2580 <= code <= 0x259F:  # block elements: bars
        return "#"
    return None


def ascii_stand_in(char: str) -> str:
    """A short ASCII text that reads like ``char``: a table entry, the letter without its
    accents (é → e), or ``?``."""
    found = _STAND_INS.get(char) or _box(char)
    if found is not None:
        return found
    import unicodedata  # here: only a console that cannot show a character needs it

    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
    )
    return stripped if stripped and stripped.isascii() and stripped.isprintable() else "?"


def _handler(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(ascii_stand_in(c) for c in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(ERROR_HANDLER, _handler)


def _needs_fitting(stream: TextIO) -> bool:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    return bool(encoding) and not encoding.startswith(("utf-8", "utf8", "utf-16", "utf-32"))


@contextmanager
def fitted_streams() -> Iterator[None]:
    """While inside, sys.stdout and sys.stderr write ASCII stand-ins for what their encoding
    lacks (only streams that are not UTF and can be reconfigured; restored on exit)."""
    restore: list[tuple[TextIO, str | None]] = []
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if stream is None or reconfigure is None or not _needs_fitting(stream):
            continue
        try:
            previous = stream.errors
            reconfigure(errors=ERROR_HANDLER)
        except (AttributeError, ValueError, OSError):
            continue  # a stream that cannot change: the CLI's boundary reports it
        restore.append((stream, previous))
    try:
        yield
    finally:
        for stream, previous in restore:
            with suppress(AttributeError, ValueError, OSError):
                stream.reconfigure(errors=previous)  # type: ignore[attr-defined]


class PrintableStream:
    """A text stream that writes through :func:`printable` (newlines and tabs kept): what
    libraries and the logging module print to it, a request target or a header value
    quoted in a waitress or Django log line, an exception message that quotes one, cannot
    put a control sequence on the terminal. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep="\n\t"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def keep_stderr_printable() -> None:
    """From now on sys.stderr escapes control characters (:class:`PrintableStream`): for the
    processes that serve or relay peers (serve, its workers and app processes, inject),
    whose libraries log what a client or a server sent. A test runner that swaps
    sys.stderr around a command (click's CliRunner) puts its own back afterwards."""
    if sys.stderr is not None and not isinstance(sys.stderr, PrintableStream):
        sys.stderr = cast(TextIO, PrintableStream(sys.stderr))  # the stream's own for the rest

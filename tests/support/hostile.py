"""Strings a hostile server or a doctored saved file may send, and the check that a text for
a terminal carries none of their control characters.

The strategy mixes every control character (C0, DEL, C1, bidirectional overrides) with the
sequences that do harm (OSC 0 window title, OSC 52 clipboard, DCS, CSI, 8-bit CSI) and with
rich markup (``[/]``, ``[bold]``, ``[link=...]``).
"""

from __future__ import annotations

import re
import unicodedata

from hypothesis import strategies as st

__all__ = ["HARMFUL", "assert_terminal_safe", "hostile_text"]

HARMFUL = (
    "\x1b]0;PWNED-TITLE\x07",
    "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\",
    "\x1bP+q544e\x1b\\",
    "\x1b[2J\x1b[41m",
    "\x9b31m",
    "\x9d0;T\x9c",
    "\u202e",
    "[/]",
    "[bold]",
    "[link=http://127.0.0.1:1/evil]x[/link]",
)

_CONTROL = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\u202a", "\u202e", "\u2066", "\u2069", "\u2028"]),
)

hostile_text = st.lists(
    st.one_of(_CONTROL, st.sampled_from(HARMFUL), st.text("ab[]/=;:", max_size=4)),
    min_size=1,
    max_size=8,
).map("".join)

# The only escape sequences a renderer may write itself: SGR styles when colour is on.
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_terminal_safe(text: str, color: bool) -> None:
    """No control character but newlines; with colour, only SGR style sequences."""
    rest = _SGR.sub("", text) if color else text
    bad = sorted(
        {
            c
            for c in rest
            if c != "\n"
            and (
                unicodedata.category(c) == "Cc"
                or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
            )
        }
    )
    assert not bad, f"control characters reach the terminal: {bad!r}"

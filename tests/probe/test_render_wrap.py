"""The terminal renderer's word wrap is textwrap's (break_long_words and break_on_hyphens
off), without importing textwrap on a printed run."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.probe.render import wrap_words

# Words, every kind of white space textwrap treats specially (and some it does not), hyphens,
# and words longer than the narrow widths.
_TEXT = st.lists(
    st.sampled_from([*"ab-.é \t\n\r\x0b\x0c\xa0\u2003", "word", "x" * 30]),
    max_size=80,
).map("".join)


@given(_TEXT, st.integers(min_value=1, max_value=120))
def test_wraps_line_for_line_as_textwrap(text: str, width: int) -> None:
    expected = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    assert wrap_words(text, width) == expected


def test_a_verdict_paragraph_and_bad_widths() -> None:
    text = (
        "A new connection costs 101.2 ms more than a reused one (95 % interval 99.0..104.1 ms);"
        " most of it (100.3 ms) is in time to first byte."
    )
    for width in (10, 40, 80, 100):
        assert wrap_words(text, width) == textwrap.wrap(
            text, width, break_long_words=False, break_on_hyphens=False
        )
    with pytest.raises(ValueError, match="invalid width"):
        wrap_words(text, 0)

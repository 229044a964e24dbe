"""The Server-Timing grammar: W3C examples, lenient processing, and format/parse agreement."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.instrument.servertiming import (
    Metric,
    believable,
    escape_text,
    format_header,
    format_metric,
    parse,
    parse_headers,
    unescape_text,
)


def test_several_metrics_with_dur_and_desc() -> None:
    got = parse('miss, db;dur=53, app;dur=47.2;desc="Application logic"')
    assert got == (
        Metric("miss"),
        Metric("db", 53.0),
        Metric("app", 47.2, "Application logic"),
    )


def test_quoted_string_with_comma_semicolon_and_escapes() -> None:
    got = parse(r'cache;desc="hit, \"warm\"; l1";dur=0.5, next')
    assert got[0] == Metric("cache", 0.5, 'hit, "warm"; l1')
    assert got[1].name == "next"


def test_whitespace_and_case_insensitive_param_names() -> None:
    assert parse("  total ; DUR = 12.5 ;  Desc = hello  ") == (Metric("total", 12.5, "hello"),)


def test_first_dur_and_desc_win_and_extra_params_kept() -> None:
    (m,) = parse("db;dur=1;dur=2;desc=a;desc=b;count=4")
    assert (m.dur_ms, m.desc, m.params) == (1.0, "a", (("count", "4"),))


def test_bad_dur_is_zero_and_nonfinite_rejected() -> None:
    assert parse("a;dur=abc, b;dur=inf, c;dur=nan") == (
        Metric("a", 0.0),
        Metric("b", 0.0),
        Metric("c", 0.0),
    )


def test_malformed_metric_is_skipped_without_losing_the_rest() -> None:
    got = parse('"quoted-name";dur=1, good;dur=2, ;dur=3, also;dur=4 junk, last')
    assert [m.name for m in got] == ["good", "also", "last"]
    assert got[1].dur_ms == 4.0


def test_param_without_value_and_unterminated_quote() -> None:
    assert parse("a;flag") == (Metric("a", None, None, (("flag", ""),)),)
    assert parse('a;desc="never closed') == (Metric("a", None, "never closed"),)


def test_several_header_lines_are_one_list() -> None:
    assert [m.name for m in parse_headers(["a;dur=1", "b, c;dur=3"])] == ["a", "b", "c"]


def test_empty_and_commas_only() -> None:
    assert parse("") == ()
    assert parse(" , ,, ") == ()


def test_format_quotes_only_when_needed() -> None:
    assert format_metric("db", 1.23456, "4") == "db;dur=1.235;desc=4"
    assert format_metric("db", None, 'say "hi"') == 'db;desc="say \\"hi\\""'
    with pytest.raises(ValueError, match="token"):
        format_metric("bad name")


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!", min_size=1, max_size=12)


@given(
    st.lists(
        st.tuples(
            _token,
            st.none() | st.floats(0, 1e6, allow_nan=False).map(lambda f: round(f, 3)),
            st.none() | st.text(max_size=20),
        ),
        max_size=5,
    )
)
def test_format_then_parse_round_trips(items: list[tuple[str, float | None, str | None]]) -> None:
    metrics = [Metric(n, d, desc) for n, d, desc in items]
    got = parse(format_header(metrics))
    assert [m.name for m in got] == [m.name for m in metrics]
    for a, b in zip(got, metrics, strict=False):
        assert (
            a.dur_ms == pytest.approx(b.dur_ms, abs=1e-3)
            if b.dur_ms is not None
            else (a.dur_ms is None)
        )
        if b.desc is not None:
            assert a.desc is not None and unescape_text(a.desc) == b.desc


# RFC 9110 field-value made of the Server-Timing grammar, strictly: what we emit must match.
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_PARAM = rf"{_TCHAR}+=(?:{_TCHAR}+|{_QUOTED})"
_METRIC = rf"{_TCHAR}+(?:;{_PARAM})*"
_HEADER = re.compile(rf"{_METRIC}(?:, {_METRIC})*")


@given(
    name=_token,
    dur=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    desc=st.none() | st.text(),
)
def test_any_desc_and_value_give_valid_ascii(
    name: str, dur: float | None, desc: str | None
) -> None:
    text = format_metric(name, dur, desc)
    assert text.isascii() and _HEADER.fullmatch(text), text
    (metric,) = parse(text)
    if dur is not None and math.isfinite(dur):
        assert metric.dur_ms == pytest.approx(dur, abs=1e-3, rel=1e-9)
    else:
        assert metric.dur_ms is None
    assert (metric.desc is None) if desc is None else (unescape_text(metric.desc or "") == desc)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("arrow→", "arrow\\u2192"),
        ("C:\\x", "C:\\\\x"),
        ("\r\n", "\\x0d\\x0a"),
        ("\U0001f600", "\\U0001f600"),
        ("\ud800", "\\ud800"),  # a lone surrogate, as thread names can hold
        ("waitress-0", "waitress-0"),
    ],
)
def test_escape_text(text: str, escaped: str) -> None:
    assert escape_text(text) == escaped
    assert unescape_text(escaped) == text


@given(st.text())
def test_escape_round_trips(text: str) -> None:
    escaped = escape_text(text)
    assert escaped.isascii() and escaped.isprintable()
    assert unescape_text(escaped) == text


@given(
    durs=st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=8),
    exchange_ms=st.floats(min_value=0.0, max_value=1e6),
)
def test_any_impossible_dur_is_dropped_and_any_possible_one_kept(
    durs: list[float | None], exchange_ms: float
) -> None:
    """believable: kept durations lie in [0, the exchange]; everything else is dropped, and
    what is dropped holds only numbers a saved file can carry."""
    metrics = [Metric(f"m{i}", d) for i, d in enumerate(durs)]
    kept, dropped = believable(metrics, exchange_ms)
    assert len(kept) + len(dropped) == len(metrics)
    for m in kept:
        assert m.dur_ms is None or 0.0 <= m.dur_ms <= exchange_ms + 0.001
    for m in dropped:
        if m.dur_ms is None:
            assert "dur" in dict(m.params)
        else:
            assert abs(m.dur_ms) <= 2**53
            assert m.dur_ms < 0 or m.dur_ms > exchange_ms

"""The Server-Timing grammar: W3C examples, lenient processing, and format/parse agreement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.servertiming import Metric, format_header, format_metric, parse, parse_headers


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
            st.none() | st.text(max_size=20).filter(lambda s: "\r" not in s and "\n" not in s),
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
        if b.desc is not None and all(c >= " " and c != "\x7f" for c in b.desc):
            assert a.desc == b.desc

"""Statement shapes: what counts as "the same query"."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.instrument.disclosure import Disclosure
from lagscope.instrument.record import RequestTiming, build_metrics, parse_dbshapes
from lagscope.instrument.shapes import MAX_SHAPE_CHARS, normalize, statement_shape


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # Django's ORM: same statement, values as parameters, IN lists of any length.
        (
            'SELECT "t"."id" FROM "t" WHERE "t"."id" IN (%s, %s, %s)',
            'SELECT "t"."id" FROM "t" WHERE "t"."id" IN (%s)',
        ),
        # Literals inlined (raw SQL, debug output).
        (
            "SELECT * FROM t WHERE a = 5 AND b = 'x'",
            "SELECT * FROM t WHERE a = -17.5 AND b = 'it''s'",
        ),
        # Every paramstyle; sqlcommenter's per-request trace comment.
        ("SELECT a FROM t WHERE b = $1", "SELECT a FROM t WHERE b = :name"),
        ("SELECT a FROM t /*traceparent='00-1'*/", "SELECT a  FROM t /*traceparent='00-2'*/"),
        # bulk_create: any number of rows.
        ("INSERT INTO t (a, b) VALUES (%s, %s)", "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)"),
    ],
)
def test_same_shape(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)
    assert statement_shape(a) == statement_shape(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT a FROM t1", "SELECT a FROM t2"),  # digits inside identifiers are names
        ("SELECT a FROM t WHERE b = %s", "SELECT a FROM t WHERE c = %s"),
        ("SELECT x::int FROM t", "SELECT x::text FROM t"),  # casts are not :named params
    ],
)
def test_different_shape(a: str, b: str) -> None:
    assert statement_shape(a) != statement_shape(b)


@given(st.text(max_size=300))
def test_any_text_has_a_shape_without_its_literals(sql: str) -> None:
    shape = normalize(sql)
    assert normalize(shape) == shape  # idempotent
    assert isinstance(statement_shape(sql), int)


def test_record_counts_shapes_and_the_metric_carries_no_sql() -> None:
    timing = RequestTiming(0.0)
    timing.add_query(0.001, 0.1, statement_shape("SELECT 1"))
    for i in range(60):
        timing.add_query(0.002, 0.2, statement_shape(f"SELECT * FROM item WHERE id = {i}"))
    timing.add_query(0.003, 0.3, None)  # a statement without a shape still counts in db
    timing.end_s = 1.0
    m = {x.name: x for x in build_metrics(timing, Disclosure.FULL)}
    assert m["db"].desc == "62 queries"
    assert m["dbshapes"].desc == "2 shapes, max 60 repeats"
    assert m["dbshapes"].dur_ms == pytest.approx(120.0)
    assert parse_dbshapes(m["dbshapes"].desc) == (2, 60)


def test_ties_pick_the_slower_shape_and_no_queries_no_metric() -> None:
    timing = RequestTiming(0.0)
    timing.add_query(0.001, 0.1, 1)
    timing.add_query(0.005, 0.1, 2)
    assert timing.top_shape() == (2, 1, 0.005)
    empty = RequestTiming(0.0)
    empty.end_s = 1.0
    assert "dbshapes" not in {x.name for x in build_metrics(empty, Disclosure.FULL)}


@pytest.mark.parametrize(
    "desc", [None, "", "2 shapes", "x shapes, max 1 repeats", "1 shape, max 1 repeat "]
)
def test_parse_dbshapes_rejects_other_text(desc: str | None) -> None:
    assert parse_dbshapes(desc) is None


@pytest.mark.parametrize(
    "text",
    [
        "/*" * 50_000,  # unterminated comments: one match, not one rescan per "/*"
        "'" * 100_000,
        "(?, " * 30_000,
        "1 " * 60_000,
        "INSERT INTO t (a) VALUES " + ", ".join(["(%s)"] * 100_000),
    ],
)
def test_huge_and_hostile_statements_are_bounded(text: str) -> None:
    start = time.perf_counter()
    for _ in range(3):
        statement_shape(text + str(time.perf_counter()))  # new texts: no cache hits
    # 3 × MAX_SHAPE_CHARS of normalizing: well under a second even on a loaded VM.
    assert time.perf_counter() - start < 1.0
    assert normalize("SELECT 1 /* never closed") == "SELECT ?"


def test_a_long_statement_is_shaped_by_its_start() -> None:
    def insert(rows: int) -> str:
        return "INSERT INTO t (a, b) VALUES " + ", ".join(["(%s, %s)"] * rows)

    assert len(insert(5000)) > MAX_SHAPE_CHARS
    # Bulk inserts of any size past the limit are one shape, and not another table's.
    assert statement_shape(insert(5000)) == statement_shape(insert(6000))
    assert statement_shape(insert(5000)) != statement_shape(insert(5000).replace(" t ", " u "))

"""The compact profile: compaction of a call tree, the wire form both ways, hostile input."""

from __future__ import annotations

import pytest

from lagscope.instrument.profile import (
    MAX_FRAMES,
    MAX_HEADER_CHARS,
    Profile,
    ProfileError,
    ProfileFrame,
    RawFrame,
    compact,
    encode_header,
    hotspots,
    parse_header,
    reason_header,
)


def lib(function: str, package: str, total_s: float, *children: RawFrame) -> RawFrame:
    return RawFrame(function, f"{package}/mod.py", 10, False, package, total_s, children)


def app(function: str, line: int, total_s: float, *children: RawFrame) -> RawFrame:
    return RawFrame(function, "shop/views.py", line, True, "shop", total_s, children)


SLEEP = RawFrame("sleep", "<built-in>", 0, False, "<built-in>", 0.2)


def request_tree() -> list[RawFrame]:
    # Django's handler chain, the view, a helper sleeping 200 ms, and an ORM loop whose
    # time reaches psycopg through several Django frames.
    orm = lib(
        "QuerySet.__iter__",
        "django",
        0.05,
        lib(
            "compiler.execute_sql",
            "django",
            0.05,
            lib("Cursor.execute", "psycopg", 0.05, lib("wait", "psycopg", 0.05)),
        ),
    )
    view = app("order_list", 31, 0.26, app("slow_helper", 12, 0.2, SLEEP), orm)
    chain = lib("inner", "django", 0.262, lib("_get_response", "django", 0.261, view))
    return [chain]


def test_compaction_keeps_app_frames_and_library_boundaries() -> None:
    profile = compact(request_tree(), 0.263)
    names = [f.function for f in profile.frames]
    # _get_response (Django under Django, not a leaf) and execute_sql are folded away.
    assert names == [
        "inner",
        "order_list",
        "slow_helper",
        "sleep",
        "QuerySet.__iter__",
        "Cursor.execute",
        "wait",
    ]
    by_name = {f.function: f for f in profile.frames}
    assert by_name["order_list"].parent == 0
    assert profile.frames[by_name["Cursor.execute"].parent].function == "QuerySet.__iter__"
    assert by_name["inner"].self_ms == pytest.approx(2.0)


def test_hotspots_name_the_helper_not_the_view_and_where_the_time_goes() -> None:
    spots = hotspots(compact(request_tree(), 0.263))
    assert [s.function for s in spots] == ["slow_helper", "order_list"]
    helper, view = spots
    assert helper.ms == pytest.approx(200.0) and helper.share == pytest.approx(0.76, abs=0.01)
    assert helper.where == "shop/views.py:12"
    assert helper.spends_in == ("sleep (<built-in>)",)
    assert view.ms == pytest.approx(60.0)
    assert view.spends_in[:2] == (
        "QuerySet.__iter__ (django/mod.py)",
        "Cursor.execute (psycopg/mod.py)",
    )


def test_round_trip_through_the_header() -> None:
    profile = compact(request_tree(), 0.263)
    header = encode_header(profile)
    assert header.isascii() and "\n" not in header
    assert parse_header(header) == profile
    assert parse_header(reason_header("off")) == "off"


def test_names_outside_ascii_and_separators_survive_encoding() -> None:
    frame = RawFrame("größe, <lambda> x", "C:\\app dir\\v.py", 3, True, "app", 0.01)
    profile = compact([frame], 0.01)
    header = encode_header(profile)
    assert header.isascii() and header.count(" ") == 2
    parsed = parse_header(header)
    assert isinstance(parsed, Profile)
    assert parsed.frames[0].function == "größe, <lambda> x"
    assert parsed.frames[0].file == "C:\\app dir\\v.py"


def test_a_wide_tree_is_bounded_in_frames_and_size() -> None:
    leaves = [RawFrame(f"f{i}" * 30, "x/" * 70 + f"{i}.py", i, True, "x", 0.01) for i in range(300)]
    profile = compact([app("view", 1, 3.0, *leaves)], 3.0)
    assert len(profile.frames) <= MAX_FRAMES
    assert len(encode_header(profile)) <= MAX_HEADER_CHARS
    assert isinstance(parse_header(encode_header(profile)), Profile)


def test_light_frames_are_dropped() -> None:
    profile = compact([app("view", 1, 1.0, app("tiny", 2, 0.001), app("big", 3, 0.9))], 1.0)
    assert [f.function for f in profile.frames] == ["view", "big"]


GOOD = "1 100000 -,100000,0,5,a,view,v.py 0,90000,90000,7,a,helper,v.py"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("", "version"),
        ("2 100 -,1,0,1,a,f,g", "version"),
        ("1 -5", "version"),
        ("1 99999999999", "version"),
        ("1 100000 -,100000,0,5,a,view,v.py\r\nX: 1", "malformed"),
        ("1 100000 -,100000,0,5,x,view,v.py", "malformed"),
        ("1 100000 -,100000,0,5,a,,v.py", "malformed"),
        ("1 100000 -,100000,0,5,a,vi<ew,v.py", "malformed"),
        ("1 100000 -,1e5,0,5,a,view,v.py", "malformed"),
        ("1 100000 -,100000,200000,5,a,view,v.py", "out of range"),
        ("1 100000 0,100000,0,5,a,view,v.py", "precede"),
        ("1 100000 -,100000,0,5,a,view,v.py 0,200000,0,7,a,h,v.py", "longer than its parent"),
        ("1 100000 -,100000,60000,5,a,view,v.py 0,90000,0,7,a,h,v.py", "exceed its time"),
        ("1 100 -,100000,0,5,a,view,v.py", "exceed its duration"),
        ("1 100000 -,100000,0,5,a,%1B%5B31m,v.py", "control"),
        ("1 100000 -,100000,0,5,a,%E2%80%AE,v.py", "control"),
        ("1 100000 -,100000,0,5,a,%FF,v.py", "UTF-8"),
        ("1 100000 -,100000,0,5,a," + "%41" * 121 + ",v.py", "longer than"),
        ("1 100 " + " ".join(["-,1,0,1,a,f,g"] * (MAX_FRAMES + 1)), "more than"),
        ("1 100 " + "x" * 9000, "longer than"),
        ("none bored", "unknown reason"),
    ],
)
def test_hostile_headers_are_refused_with_a_reason(header: str, why: str) -> None:
    with pytest.raises(ProfileError, match=why):
        parse_header(header)


def test_the_reference_header_parses() -> None:
    parsed = parse_header(GOOD)
    assert parsed == Profile(
        100.0,
        (
            ProfileFrame("view", "v.py", 5, True, 100.0, 0.0, -1),
            ProfileFrame("helper", "v.py", 7, True, 90.0, 90.0, 0),
        ),
    )


def test_repeated_calls_merge_and_lagscopes_own_frames_are_transparent() -> None:
    # The query hook (lagscope) sits between Django's cursor and the driver; each query is
    # a separate call of the same functions.
    def query(line: int) -> RawFrame:
        hook = RawFrame(
            "_observe_query",
            "lagscope/django/db.py",
            60,
            False,
            "lagscope",
            0.01,
            (lib("Cursor.execute", "psycopg", 0.009),),
        )
        return lib("CursorWrapper.execute", "django", 0.01, hook)

    view = app("repeated", 40, 0.05, *(query(i) for i in range(5)))
    profile = compact([view], 0.05)
    assert [(f.function, f.total_ms) for f in profile.frames] == [
        ("repeated", 50.0),
        ("CursorWrapper.execute", pytest.approx(50.0)),
        ("Cursor.execute", pytest.approx(45.0)),
    ]
    # The hook's own time stays in the frame above it.
    assert profile.frames[1].self_ms == pytest.approx(5.0)

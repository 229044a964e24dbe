"""Loading saved files: strict JSON, bounded nesting, validation against the published schema
with the path of the first error, every failure one line with exit 2."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.model import to_dict
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.render import JsonRenderer, load_json
from lagscope.probe.runner import run_probe
from lagscope.saved import (
    MAX_DEPTH,
    SCHEMA_FILES,
    SavedFileError,
    load_saved_json,
    parse_saved_json,
)
from lagscope.schemacheck import MAX_NUMBER, SchemaError, SchemaViolation, compile_schema
from support.saved_v1 import as_v1
from support.wsgi import waitress_server


def _app(environ: dict[str, object], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2"), ("Server-Timing", "total;dur=0.001")])
    return [b"ok"]


@pytest.fixture(scope="module")
def saved2() -> dict[str, Any]:
    """A real run's JSON form: probe against waitress on loopback (lagscope.probe/2)."""
    with waitress_server(_app) as (host, port):
        report = run_probe(ProbeOptions(target=parse_url(f"http://{host}:{port}/"), cold=2, warm=3))
    data: dict[str, Any] = json.loads(JsonRenderer().render(report))
    assert data["schema"] == "lagscope.probe/2"
    return data


@pytest.fixture(scope="module")
def saved(saved2: dict[str, Any]) -> dict[str, Any]:
    """The same run as a file saved before the columns (lagscope.probe/1): one object per
    request, so every test below that points into a record tests the older loader."""
    return as_v1(saved2)


def _reason(text: str, schema_file: str | None = "probe-1.schema.json") -> str:
    with pytest.raises(SavedFileError) as err:
        parse_saved_json(text, "run.json", schema_file)
    assert err.value.exit_code == ExitCode.USAGE and err.value.phase == "load"
    line = err.value.one_line()
    assert "\n" not in line and len(line) < 400
    assert line.startswith("load: run.json: ")
    return err.value.reason


def test_a_saved_run_loads_and_round_trips(
    saved: dict[str, Any], saved2: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "run.json"
    for data in (saved, saved2):
        path.write_text(json.dumps(data), encoding="utf-8")
        assert load_saved_json(path, "probe-1.schema.json") == data
        assert load_saved_json(path, "probe-2.schema.json") == data  # any version of the kind
        assert load_saved_json(path) == data  # the schema picked from the "schema" field
        assert to_dict(load_json(json.dumps(data))) == saved2  # saved again as the newest
    old, new = load_json(json.dumps(saved)), load_json(json.dumps(saved2))
    assert (old.schema, new.schema) == ("lagscope.probe/1", "lagscope.probe/2")
    assert replace(old, schema=new.schema) == new  # the same run, whichever version


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2_000, 100_000])
def test_deep_nesting_is_refused_without_recursion_error(saved: dict[str, Any], depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        _reason(text)  # one line, whatever it says first
    # Inside the one free-form part of a report, the options.
    nested = json.dumps(saved)[:-1] + ', "options": ' + '{"a":' * depth + "1" + "}" * depth + "}"
    assert f"nested deeper than {MAX_DEPTH}" in _reason(nested)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"x": NaN}', "NaN is not a number JSON allows"),
        ('{"x": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"x": ' + "9" * 5000 + "}", "not JSON this tool accepts"),
        ("{", "not JSON: Expecting property name"),
        ("[1, 2]", "the top level is not an object"),
        ('{"schema": "lagscope.other/7"}', "unsupported schema 'lagscope.other/7'"),
        ("{}", 'no "schema" field; expected lagscope.probe/1'),
    ],
)
def test_what_is_not_a_report_is_one_line(text: str, words: str) -> None:
    assert words in _reason(text)


def test_without_a_schema_file_the_schema_field_chooses() -> None:
    assert "unknown schema 'x/1'; expected one of lagscope.probe/1" in _reason(
        '{"schema": "x/1"}', None
    )
    assert 'no "schema" field' in _reason('{"a": 1}', None)


def _mutated(saved: dict[str, Any], path: tuple[str | int, ...], value: Any) -> str:
    data = copy.deepcopy(saved)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return json.dumps(data, allow_nan=True)


@pytest.mark.parametrize(
    ("path", "value", "where", "words"),
    [
        (
            ("series", 0, "requests", 1, "total_ms"),
            "abc",
            "$.series[0].requests[1].total_ms",
            "'abc' is not of type 'number'",
        ),
        (("series", 2, "name"), "hot", "$.series[2].name", "'hot' is not one of"),
        (("duration_ms",), -1, "$.duration_ms", "less than the minimum of 0"),
        (("series", 0, "requests", 0, "extra"), 1, "$.series[0].requests[0]", "extra"),
        (("keep_alive", "supported"), "yes", "$.keep_alive.supported", "not of type 'boolean'"),
    ],
)
def test_schema_errors_name_the_path_of_the_first_error(
    saved: dict[str, Any], path: tuple[str | int, ...], value: Any, where: str, words: str
) -> None:
    reason = _reason(_mutated(saved, path, value))
    assert reason.startswith(where + ": ")
    assert words in reason


def test_nan_inside_a_report_is_refused(saved: dict[str, Any]) -> None:
    text = _mutated(saved, ("series", 0, "requests", 0, "wait_ms"), math.nan)
    assert "NaN is not a number JSON allows" in _reason(text)


def test_long_values_in_a_message_are_cut(saved: dict[str, Any]) -> None:
    reason = _reason(_mutated(saved, ("verdict",), ["x" * 10_000]))
    assert reason.startswith("$.verdict: ") and reason.endswith("…") and len(reason) < 200


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(LagscopeError, match="cannot read") as err:
        load_saved_json(tmp_path / "absent.json")
    assert err.value.exit_code == ExitCode.USAGE
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"schema": "café"}'.encode("latin-1"))
    with pytest.raises(SavedFileError, match="not UTF-8 text"):
        load_saved_json(latin1)


@settings(max_examples=60, deadline=None)
@given(
    where=st.sampled_from(
        [
            ("series", 0, "requests", 0, "total_ms"),
            ("series", 1, "phases", "total", "p50_ms"),
            ("resolve", "source"),
            ("comparisons",),
            ("series", 0, "requests", 0, "attempts"),
        ]
    ),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=20),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    ),
)
def test_any_value_anywhere_loads_or_is_one_line(
    saved: dict[str, Any], where: tuple[str | int, ...], value: Any
) -> None:
    # Whatever the schema lets through, the model must take without a traceback.
    error: ValueError | None = None
    try:
        load_json(_mutated(saved, where, value))
    except ValueError as exc:
        error = exc
    assert error is None or "\n" not in str(error)


def _number_paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path of every number in a document (booleans are not numbers)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _number_paths(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _number_paths(v, (*path, i))]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [path]
    return []


_OVERFLOWS = ["1e999", "-1e400", "1" + "0" * 400, "9007199254740993", "-1.7e308"]


@pytest.mark.parametrize("number", _OVERFLOWS)
def test_any_number_out_of_range_anywhere_is_refused(saved: dict[str, Any], number: str) -> None:
    """Every number of a saved file, wherever it sits (the free-form options too), is finite
    and at most 2**53 in magnitude: anything else is exit 2 at load, never an OverflowError
    later (sums, means and charts of a file's numbers stay finite)."""
    data = copy.deepcopy(saved)
    data["options"]["deep"] = {"x": [1.5]}
    paths = _number_paths(data)
    assert len(paths) > 50
    marker = 123456.789
    for path in paths:
        doc = copy.deepcopy(data)
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = marker
        text = json.dumps(doc).replace("123456.789", number, 1)
        reason = _reason(text)
        assert "out of range" in reason or "less than the minimum" in reason, (path, reason)


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "1e400"])
def test_a_number_the_fast_parser_reads_otherwise_is_named_as_written(
    saved2: dict[str, Any], number: str
) -> None:
    """orjson reads an integer beyond 64 bits as a float and refuses 1e400; the reason is
    still json.loads's, naming the integer as the file writes it."""
    doc = copy.deepcopy(saved2)
    doc["series"][0]["requests"]["columns"]["body_bytes"][1] = 123456.789
    reason = _reason(json.dumps(doc).replace("123456.789", number, 1), None)
    shown = "inf" if number == "1e400" else number
    assert reason == (
        f"$.series[0].requests.columns.body_bytes[1]: {shown} is out of range "
        "(finite, magnitude at most 2**53)"
    )


def test_the_range_rule_is_2_to_the_53(saved: dict[str, Any]) -> None:
    for value, ok in ((MAX_NUMBER, True), (-MAX_NUMBER, True), (MAX_NUMBER + 1, False)):
        doc = copy.deepcopy(saved)
        doc["series"][0]["requests"][0]["body_bytes"] = abs(value)
        doc["comparisons"][0]["diff_ms"] = value
        text = json.dumps(doc)
        if ok:
            parse_saved_json(text, "run.json", "probe-1.schema.json")
        else:
            assert "out of range" in _reason(text)


@pytest.mark.parametrize("schema_file", sorted(SCHEMA_FILES.values()))
def test_every_published_schema_compiles(schema_file: str) -> None:
    from importlib import resources

    schema = json.loads(
        resources.files("lagscope.schemas").joinpath(schema_file).read_text("utf-8")
    )
    compile_schema(schema)


@pytest.mark.parametrize(
    "schema",
    [{"type": "string", "format": "date"}, {"anyOf": []}, {"$ref": "http://x/y"}, {"type": "x"}],
)
def test_a_keyword_the_checker_lacks_is_refused_when_compiled(schema: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        compile_schema(schema)


def _any_value(words: list[str], keys: list[str]) -> st.SearchStrategy[Any]:
    """Any JSON value (numbers in and out of range), its strings and keys drawn from these."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**60), max_value=2**60)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.sampled_from(words),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(keys), inner, max_size=3)
        ),
        max_leaves=6,
    )


_PROBE_SCHEMA = json.loads(
    (Path(__file__).parents[1] / "src/lagscope/schemas/probe-1.schema.json").read_text("utf-8")
)
_CHECK = compile_schema(_PROBE_SCHEMA)


@settings(max_examples=150, deadline=None)
@given(
    where=st.sampled_from(
        [
            ("series", 0, "requests", 0, "total_ms"),
            ("series", 0, "requests", 0, "head_ms"),
            ("series", 0, "requests", 0, "index"),
            ("series", 0, "requests", 0, "response_headers"),
            ("series", 0, "requests", 0, "server_timing", 0),
            ("series", 1, "phases", "total"),
            ("series", 1, "phases"),
            ("series", 1, "outside_app"),
            ("series", 1, "server_timing"),
            ("resolve", "source"),
            ("resolve",),
            ("keep_alive", "reconnects"),
            ("comparisons", 0),
            ("series", 0, "requests", 0, "attempts"),
            ("schema",),
        ]
    ),
    value=_any_value(
        ["cold", "dns", "ipv4", "lagscope.probe/1", "x"], ["name", "n", "p50_ms", "x"]
    ),
)
def test_the_checker_agrees_with_jsonschema(
    saved: dict[str, Any], where: tuple[str | int, ...], value: Any
) -> None:
    """The one-pass checker accepts exactly what the published schema accepts (jsonschema
    decides), apart from the range rule, which is the checker's own addition."""
    _agrees_with_jsonschema(_PROBE_SCHEMA, _CHECK, json.loads(_mutated(saved, where, value)))


def _agrees_with_jsonschema(schema: dict[str, Any], check: Any, doc: dict[str, Any]) -> None:
    import jsonschema

    theirs = jsonschema.Draft202012Validator(schema).is_valid(doc)
    message = ""
    try:
        check(doc)
    except SchemaViolation as exc:
        message = exc.message
    if not message:
        assert theirs
    elif theirs:
        assert "out of range" in message, message


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0xD800, 0xDFFF),
    st.sampled_from(["{}", "x{}", "{}y", "\\\\\\\\{}"]),
    st.booleans(),
)
def test_any_lone_surrogate_in_a_saved_file_is_bad_input(
    tmp_path_factory: pytest.TempPathFactory, code: int, shape: str, upper: bool
) -> None:
    """Valid JSON, but no output can hold it: exit 2 at load, naming the file."""
    escape = f"\\u{code:04X}" if upper else f"\\u{code:04x}"
    path = tmp_path_factory.mktemp("s") / "run.json"
    path.write_text('{"schema": "lagscope.probe/1", "url": "' + shape.format(escape) + '"}')
    with pytest.raises(SavedFileError) as info:
        load_saved_json(path)
    assert info.value.exit_code == ExitCode.USAGE and "half of a UTF-16 pair" in info.value.message
    assert str(path) in info.value.one_line()


def test_pairs_and_escaped_backslashes_are_not_lone_surrogates(tmp_path: Path) -> None:
    for value in ("\\ud83d\\ude00", "\\uD83D\\uDE00", "\\\\ud800", "plain"):
        path = tmp_path / "run.json"
        path.write_text('{"schema": "nope", "url": "' + value + '"}')
        with pytest.raises(SavedFileError) as info:
            load_saved_json(path)
        assert "unknown schema" in info.value.message  # past the surrogate check


# --- the columns of lagscope.probe/2 (and report/2): the same rules, over whole arrays ------


@pytest.mark.parametrize("number", _OVERFLOWS)
def test_any_number_out_of_range_in_a_column_file_is_refused(
    saved2: dict[str, Any], number: str
) -> None:
    """As for /1: every number of the column form, each column entry, each distinct value
    and the free-form options, is finite and at most 2**53 in magnitude."""
    data = copy.deepcopy(saved2)
    data["options"]["deep"] = {"x": [1.5]}
    paths = _number_paths(data)
    assert len(paths) > 50
    for path in paths:
        doc = copy.deepcopy(data)
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = 123456.789
        reason = _reason(json.dumps(doc).replace("123456.789", number, 1))
        assert "out of range" in reason or "less than the minimum" in reason, (path, reason)


_COLUMN = ("series", 0, "requests", "columns")


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("wait_ms", -0.5, "-0.5 is less than the minimum of 0"),
        ("wait_ms", "12", "'12' is not of type 'number'"),
        ("total_ms", None, "None is not of type 'number'"),
        ("head_ms", -1e-300, "less than the minimum of 0"),
        ("status", 2.5, "2.5 is not of type 'integer'"),
        ("reused", 1, "1 is not of type 'boolean'"),
        ("body_bytes", 1e308, "out of range"),
        ("response_headers", -1, "less than the minimum of 0"),
        ("server_timing_dur_ms", [1], "not of type 'number', 'null'"),
    ],
)
def test_a_bad_value_in_a_column_names_the_column_and_the_request(
    saved2: dict[str, Any], column: str, value: Any, words: str
) -> None:
    reason = _reason(_mutated(saved2, (*_COLUMN, column, 1), value))
    assert reason.startswith(f"$.series[0].requests.columns.{column}[1]: "), reason
    assert words in reason


def _model_reason(data: dict[str, Any]) -> str:
    with pytest.raises(ValueError, match=r"malformed lagscope\.probe/2 report") as err:
        load_json(json.dumps(data))
    line = str(err.value)
    assert "\n" not in line and len(line) < 400
    return line


def test_what_the_schema_cannot_say_is_one_line_naming_the_column(
    saved2: dict[str, Any],
) -> None:
    short = copy.deepcopy(saved2)
    short["series"][0]["requests"]["columns"]["total_ms"].pop()
    assert "series[0].requests.columns.total_ms: 1 values for 2 requests" in _model_reason(short)
    wild = copy.deepcopy(saved2)
    wild["series"][0]["requests"]["columns"]["response_headers"][1] = 7
    assert "series[0].requests.columns.response_headers[1]: 7 is not an index into" in (
        _model_reason(wild)
    )
    durs = copy.deepcopy(saved2)
    durs["series"][0]["requests"]["columns"]["server_timing_dur_ms"].append(1.0)
    assert "columns.server_timing_dur_ms: 3 values for 2 metrics" in _model_reason(durs)


def test_tiny_numbers_and_impossible_server_timing_load_as_in_a_live_run(
    saved2: dict[str, Any],
) -> None:
    """1e-300 is a number like another; a dur that is negative or longer than the request
    is dropped with the run's note, as a live run and a /1 file drop it."""
    data = copy.deepcopy(saved2)
    columns = data["series"][0]["requests"]["columns"]
    columns["head_ms"][0] = 1e-300
    columns["server_timing_dur_ms"][:2] = [-3.0, 1e15]
    report = load_json(json.dumps(data))
    first, second = report.series[0].requests
    assert first.head_ms == 1e-300
    assert first.server_timing == second.server_timing == ()
    assert [m.dur_ms for m in first.dropped_server_timing + second.dropped_server_timing] == [
        -3.0,
        1e15,
    ]
    old = load_json(json.dumps(as_v1(data)))
    assert old.series == report.series


@pytest.mark.parametrize("impossible", [None, 1e6, -0.5])
def test_an_impossible_dur_beside_metrics_without_one_is_dropped_from_its_request_only(
    saved2: dict[str, Any], impossible: float | None
) -> None:
    """The whole-column test finds an impossible dur among metrics that carry none and
    sends the file through the live run's rule; a file without one loads as saved."""
    data = copy.deepcopy(saved2)
    table = data["series"][0]["requests"]
    durs = table["columns"]["server_timing_dur_ms"]
    assert table["count"] == len(durs) == 2 and table["values"]["server_timing"] == [
        [{"name": "total", "desc": None, "params": {}}]
    ]
    table["values"]["server_timing"][0].append({"name": "thread", "desc": "w-0", "params": {}})
    table["columns"]["server_timing_dur_ms"] = [durs[0], None, impossible or durs[1], None]
    report = load_json(json.dumps(data))
    first, second = report.series[0].requests
    assert [(m.name, m.dur_ms) for m in first.server_timing] == [
        ("total", durs[0]),
        ("thread", None),
    ]
    assert first.dropped_server_timing == ()
    if impossible is None:
        assert [m.dur_ms for m in second.server_timing] == [durs[1], None]
        assert second.dropped_server_timing == ()
    else:
        assert [m.name for m in second.server_timing] == ["thread"]
        assert [m.dur_ms for m in second.dropped_server_timing] == [impossible]
    assert load_json(json.dumps(as_v1(data))).series == report.series  # the per-request rule


def test_a_lone_surrogate_in_a_distinct_value_is_bad_input(saved2: dict[str, Any]) -> None:
    data = copy.deepcopy(saved2)
    data["series"][0]["requests"]["values"]["response_headers"][0].append(["x", "SURROGATE"])
    text = json.dumps(data).replace("SURROGATE", "a\\udc00b")
    assert "half of a UTF-16 pair" in _reason(text)


_PROBE2_SCHEMA = json.loads(
    (Path(__file__).parents[1] / "src/lagscope/schemas/probe-2.schema.json").read_text("utf-8")
)
_CHECK2 = compile_schema(_PROBE2_SCHEMA)
_WHERE2 = [
    (*_COLUMN, "total_ms", 0),
    (*_COLUMN, "head_ms", 1),
    (*_COLUMN, "index"),
    (*_COLUMN, "reused", 0),
    (*_COLUMN, "server_timing_dur_ms", 0),
    (*_COLUMN, "series", 0),
    (*_COLUMN, "attempts"),
    (*_COLUMN,),
    ("series", 0, "requests", "values", "response_headers", 0),
    ("series", 0, "requests", "values", "server_timing", 0, 0),
    ("series", 0, "requests", "values", "attempts", 0),
    ("series", 0, "requests", "values", "series"),
    ("series", 0, "requests", "count"),
    ("series", 0, "requests"),
]
_ANY_VALUE = _any_value(
    ["cold", "warm", "ipv4", "lagscope.probe/2", "x"], ["name", "desc", "params", "x"]
)


@settings(max_examples=150, deadline=None)
@given(where=st.sampled_from(_WHERE2), value=_ANY_VALUE)
def test_the_checker_agrees_with_jsonschema_on_columns(
    saved2: dict[str, Any], where: tuple[str | int, ...], value: Any
) -> None:
    """The fast whole-array checks accept exactly what the published schema accepts."""
    _agrees_with_jsonschema(_PROBE2_SCHEMA, _CHECK2, json.loads(_mutated(saved2, where, value)))


@settings(max_examples=100, deadline=None)
@given(where=st.sampled_from(_WHERE2), value=_ANY_VALUE)
def test_any_value_anywhere_in_the_columns_loads_or_is_one_line(
    saved2: dict[str, Any], where: tuple[str | int, ...], value: Any
) -> None:
    error: ValueError | None = None
    try:
        load_json(_mutated(saved2, where, value))
    except ValueError as exc:
        error = exc
    assert error is None or "\n" not in str(error)


def _leaky_app(environ: dict[str, object], start_response: Any) -> list[bytes]:
    # A secret that changes with every request, in a Server-Timing description and in a
    # header whose name says nothing: each response's strings differ until redacted. The dur
    # fits in any loopback exchange (0.5 ms did not: a 0.3 ms request dropped it as impossible).
    n = str(environ["QUERY_STRING"]) or str(id(environ))
    start_response(
        "200 OK",
        [
            ("Content-Length", "2"),
            ("Server-Timing", f'app;dur=0.001;desc="api_token=S3CR3T{n}"'),
            ("X-Note", f"password=HUNTER{n} and session_key=K{n}"),
        ],
    )
    return [b"ok"]


def test_a_run_is_saved_as_a_load_would_show_it_and_reloads_to_the_same_text() -> None:
    """The writer redacts by the loader's rule, so no file holds what a load would hide,
    and values that redaction made equal are one value, as a load and save would make them."""
    with waitress_server(_leaky_app) as (host, port):
        report = run_probe(ProbeOptions(target=parse_url(f"http://{host}:{port}/"), cold=3, warm=4))
    text = JsonRenderer().render(report)
    for secret in ("S3CR3T", "HUNTER", "=K"):
        assert secret not in text
    data = json.loads(text)
    values = data["series"][0]["requests"]["values"] if "series" in data else None
    assert JsonRenderer().render(load_json(text)) == text
    if values is not None:  # every response's secret-carrying shape is one value now
        assert len([shape for shape in values["server_timing"] if shape]) == 1

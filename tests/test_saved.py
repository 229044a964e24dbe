"""Loading saved files: strict JSON, bounded nesting, validation against the published schema
with the path of the first error, every failure one line with exit 2."""

from __future__ import annotations

import copy
import json
import math
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
from lagscope.saved import MAX_DEPTH, SavedFileError, load_saved_json, parse_saved_json
from support.wsgi import waitress_server


def _app(environ: dict[str, object], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2"), ("Server-Timing", "total;dur=0.1")])
    return [b"ok"]


@pytest.fixture(scope="module")
def saved() -> dict[str, Any]:
    """A real run's JSON form: probe against waitress on loopback."""
    with waitress_server(_app) as (host, port):
        report = run_probe(ProbeOptions(target=parse_url(f"http://{host}:{port}/"), cold=2, warm=3))
    data: dict[str, Any] = json.loads(JsonRenderer().render(report))
    return data


def _reason(text: str, schema_file: str | None = "probe-1.schema.json") -> str:
    with pytest.raises(SavedFileError) as err:
        parse_saved_json(text, "run.json", schema_file)
    assert err.value.exit_code == ExitCode.USAGE and err.value.phase == "load"
    line = err.value.one_line()
    assert "\n" not in line and len(line) < 400
    assert line.startswith("load: run.json: ")
    return err.value.reason


def test_a_saved_run_loads_and_round_trips(saved: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(saved), encoding="utf-8")
    assert load_saved_json(path, "probe-1.schema.json") == saved
    assert load_saved_json(path) == saved  # the schema picked from the "schema" field
    assert to_dict(load_json(json.dumps(saved))) == saved


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2_000, 100_000])
def test_deep_nesting_is_refused_without_recursion_error(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        assert f"nested deeper than {MAX_DEPTH}" in _reason(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"x": NaN}', "NaN is not a number JSON allows"),
        ('{"x": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"x": 1e999}', "number 1e999 is out of range"),
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

"""Saved JSON reports: their text, and loading them back, the one way for every command
that reads a report it wrote (probe's ``lagscope.probe/2``, diagnose's ``lagscope.report/2``,
the demo's ``lagscope.demo/1``, ``manage.py lagscope db``'s ``lagscope.db/1``; and every
earlier version, :data:`SCHEMA_FILES`).

:func:`saved_text` lays a report's dict out as the file holds it; :func:`model_from_saved`
turns a schema-valid dict into a command's model with one-line reasons.

The steps, each failure one ``lagscope: load: <file>: <reason>`` line with exit 2:

1. read the bytes as text (:func:`lagscope.fileio.read_text`: UTF-8 with or without a
   byte-order mark, UTF-16 with one);
2. parse strict JSON: no ``NaN`` or ``Infinity`` (a file nested deeper than Python's parser
   can follow is refused, not a RecursionError). orjson parses a text of up to 32 MB
   first, in under half the time; ``json.loads`` parses a larger one, and again any file
   that fails here or at step 3, so each error is said in the same words;
3. check it against the published JSON Schema shipped in ``lagscope/schemas/``, compiled
   once per schema into one pass over the document (:mod:`lagscope.schemacheck`), naming
   the JSON path of the first error (``$.series[0].requests[3].total_ms``). The same pass
   holds every number to one range: finite, magnitude at most 2**53 (a number that
   overflowed to infinity while parsing, or a 400-digit integer, is refused here), and
   free-form parts nest at most :data:`MAX_DEPTH` deep.
   A kind without a published schema (``lagscope.db/1``) is checked by its model's own
   reader instead;
4. pass every string through the one redactor (:func:`lagscope.redact.document`), so a
   file saved before a redaction rule existed shows no secret in any output.

The caller gets a plain dict that matches the schema and turns it into its own model. A
100 000-request file of the current versions loads in 0.7–0.9 s on a quiet machine (0.9–1.1 s
wall on a busy one) and under 140 MB (bench/bench_load.py, docs/performance.md).
"""

from __future__ import annotations

import gc
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from lagscope import redact
from lagscope.errors import ExitCode, LagscopeError
from lagscope.schemacheck import MAX_DEPTH, SchemaViolation, compile_schema

__all__ = [
    "MAX_DEPTH",
    "SCHEMA_FILES",
    "SavedFileError",
    "load_saved",
    "load_saved_json",
    "model_from_saved",
    "parse_saved_json",
    "round_trip",
    "saved_form",
    "saved_text",
]

T = TypeVar("T")
R = TypeVar("R")

# The "schema" field of each kind and version of saved file, and its schema in
# lagscope/schemas/. Every version a command ever wrote stays here: old files still load.
SCHEMA_FILES: Mapping[str, str] = {
    "lagscope.probe/1": "probe-1.schema.json",
    "lagscope.probe/2": "probe-2.schema.json",
    "lagscope.report/1": "report-1.schema.json",
    "lagscope.report/2": "report-2.schema.json",
    "lagscope.demo/1": "demo-1.schema.json",
}


def _kind(schema: str) -> str:
    """``lagscope.probe`` for ``lagscope.probe/2``: what stays the same across versions."""
    return schema.partition("/")[0]


# Long values inside a validator message (a whole request object, say) are cut to this.
_MESSAGE_CHARS = 160


class SavedFileError(LagscopeError, ValueError):
    """A saved file that cannot be loaded: exit 2 at the CLI, a ValueError to Python callers.
    ``reason`` is the message without the file's name."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__("load", f"{where}: {reason}", ExitCode.USAGE)
        self.reason = reason


def _error(where: str, reason: str) -> SavedFileError:
    return SavedFileError(where, reason)


# A \\uD800-\\uDFFF escape not part of a pair: valid JSON, but no text any output can hold
# (UTF-8 cannot encode it). Only escapes can carry one: the file itself was decoded as UTF-8.
_ANY_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(
    r"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\)(?:\\\\)*(?<![uU][dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _lone_surrogate(text: str) -> str | None:
    """The first unpaired surrogate escape in a JSON text, or None (a scan only when the
    text has a surrogate escape at all)."""
    if _ANY_SURROGATE.search(text) is None:
        return None
    found = _LONE_SURROGATE.search(text)
    return None if found is None else (found.group(1) or found.group(2))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def saved_form(data: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of a report's JSON form as it is saved: every string through the same
    redaction a load applies (:func:`lagscope.redact.document`), so that no file holds a
    secret a later rule would find and a saved run reloads to what was saved. Values of a
    records table that redaction made equal are merged, as a load and save would."""
    copy: dict[str, Any] = json.loads(json.dumps(data, ensure_ascii=False))
    redact.document(copy)
    for table in _tables_in(copy):
        _merge_equal_values(table)
    return copy


def _tables_in(node: Any, max_depth: int = MAX_DEPTH) -> Iterator[dict[str, Any]]:
    """The records tables in ``node``, looking at most ``max_depth`` containers deep."""
    stack = [(node, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            continue
        if isinstance(item, dict):
            if item.keys() == _TABLE_KEYS:
                yield item
            else:
                stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list) and item and isinstance(item[0], (dict, list)):
            stack.extend((value, depth + 1) for value in item)


# Where the schemas put a records table: $.requests, $.series[i].requests. The search for
# them stops there, so a /1 file's 100 000 request objects are not walked for nothing.
_TABLE_DEPTH = 3


def _merge_equal_values(table: dict[str, Any]) -> None:
    """Codes renumbered in order of first use over the distinct values (the table's rule)."""
    for field, values in table["values"].items():
        keys = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]
        if len(set(keys)) == len(keys):
            continue  # nothing merged: the codes stand
        column = table["columns"][field]
        remap: dict[int, int] = {}
        seen: dict[str, int] = {}
        merged: list[Any] = []
        for i, code in enumerate(column):
            new = remap.get(code)
            if new is None:
                new = seen.get(keys[code])
                if new is None:
                    new = seen[keys[code]] = len(merged)
                    merged.append(values[code])
                remap[code] = new
            column[i] = new
        table["values"][field] = merged


def saved_text(data: Mapping[str, Any], indent: int | None = 2) -> str:
    """A report's JSON form as saved files and ``--json`` hold it (:func:`saved_form`):
    non-ASCII characters as they are, one trailing newline. A table of request records
    (``count``, ``columns``, ``values``: lagscope.probe.model.table_from_records) is
    written on one line whatever ``indent`` says: one number per line tripled a big file
    and the time to read it."""
    data = saved_form(data)
    tables: list[Mapping[str, Any]] = []
    marker = f"lagscope-table-{secrets.token_hex(8)}-"  # no string of the report is this
    shown = _tables_marked(data, tables, marker)
    text = json.dumps(shown, indent=indent, ensure_ascii=False)
    for i, table in enumerate(tables):
        compact = json.dumps(table, ensure_ascii=False, separators=(", ", ": "))
        text = text.replace(json.dumps(f"{marker}{i}"), compact, 1)
    return text + "\n"


_TABLE_KEYS = frozenset({"count", "columns", "values"})


def _tables_marked(node: Any, tables: list[Mapping[str, Any]], marker: str) -> Any:
    """``node`` with each records table replaced by a marker string (a copy of the
    containers on the way to one; the rest shared)."""
    if isinstance(node, Mapping):
        if node.keys() == _TABLE_KEYS:
            tables.append(node)
            return f"{marker}{len(tables) - 1}"
        return {k: _tables_marked(v, tables, marker) for k, v in node.items()}
    if isinstance(node, list) and any(isinstance(v, (Mapping, list)) for v in node):
        return [_tables_marked(v, tables, marker) for v in node]
    return node


def round_trip(
    report: R, to_dict: Callable[[R], dict[str, Any]], from_dict: Callable[[dict[str, Any]], R]
) -> R:
    """``report`` as its saved JSON form reads back: a live run then shows exactly the
    saved file's (rounded) numbers and redacted strings, on the terminal, in ``-o``, the HTML
    page and the HAR."""
    return from_dict(saved_form(to_dict(report)))


def model_from_saved(data: Any, from_dict: Callable[[dict[str, Any]], T], schema: str) -> T:
    """``from_dict(data)``; a dict the model cannot take becomes a ValueError with a one-line
    reason naming ``schema`` (the file's kind) and the part that is missing or bad."""
    if not isinstance(data, dict):
        raise ValueError("not a lagscope report (top level is not an object)")
    try:
        return from_dict(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"malformed {schema} report: missing or bad {exc}") from None


@cache
def _schema(name: str) -> Any:
    # Here, not at the top: only loading needs importlib.resources (~10 ms to import).
    from importlib import resources

    return json.loads(resources.files("lagscope.schemas").joinpath(name).read_text("utf-8"))


@cache
def _compiled(name: str) -> Callable[[Any], None]:
    return compile_schema(_schema(name))


def _first_schema_error(data: dict[str, Any], schema_file: str) -> str | None:
    schema = _schema(schema_file)
    expected = schema.get("properties", {}).get("schema", {}).get("const")
    if expected is not None and data.get("schema") != expected:
        # Said first and plainly: a file of another kind fails every other rule too.
        found = data.get("schema")
        what = 'no "schema" field' if found is None else f"unsupported schema {found!r}"[:120]
        return f"{what}; expected {expected}"
    try:
        _compiled(schema_file)(data)
    except SchemaViolation as exc:
        message = " ".join(exc.message.split())
        if len(message) > _MESSAGE_CHARS:
            message = message[: _MESSAGE_CHARS - 1] + "…"
        return f"{exc.path}: {message}"
    return None


def parse_saved_json(
    text: str, where: str, schema_file: str | None = None, *, validate: bool = True
) -> dict[str, Any]:
    """Parse and validate a saved file's text (``where`` names it in errors).

    ``schema_file`` is a file name in ``lagscope/schemas/``: the document must be of its
    kind, in that version or any other of :data:`SCHEMA_FILES` (a ``lagscope.probe/1``
    file passes for ``probe-2.schema.json`` and is checked against ``probe-1``'s). None
    picks the schema from the document's own ``"schema"`` field. ``validate=False``
    stops after the strict parse, for a kind whose model checks every field itself.
    """
    lone = _lone_surrogate(text)
    if lone is not None:
        raise _error(where, f"holds {lone}, half of a UTF-16 pair: not text a report can show")
    if validate and len(text) <= _QUICK_PARSE_MAX_CHARS:
        quick = _quick_parse(text)
        if quick is not None:
            try:
                return _validated(quick, where, schema_file)
            except SavedFileError:
                # Said as the standard parser's values show it: orjson turns an integer
                # beyond 64 bits into a float, which the schema pass refuses in other words.
                del quick
    data = _strict_parse(text, where)
    del text  # the text of a big file is as large again as its parsed values
    if not validate:
        if not isinstance(data, dict):
            raise _error(where, _NOT_AN_OBJECT)
        return redact.document(data)
    return _validated(data, where, schema_file)


_NOT_AN_OBJECT = 'no "schema" field: the top level is not an object'

# orjson builds a parse tree of its own before the values, and the text stays until the
# schema pass is done: for a larger text json.loads alone, whose peak is lower (a 136 MB
# /1 file of 100 000 requests peaked at 735 MB through orjson, 470 MB without it).
_QUICK_PARSE_MAX_CHARS = 32 * 2**20


def _quick_parse(text: str) -> Any:
    """``text`` parsed by orjson (under half the time of json.loads for a big file), or
    None where orjson refuses it: :func:`_strict_parse` then says why, in its words.
    orjson refuses all the JSON json.loads refuses, and NaN, Infinity and numbers that
    overflow a double too; the values it gives are json.loads's, except an integer beyond
    64 bits (a float), which no schema allows (the range rule)."""
    # Here, not at the top: --json output uses this module without reading any file.
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _strict_parse(text: str, where: str) -> Any:
    try:
        # No parse_float hook: one Python call per number was a third of the parse. A number
        # that overflows to infinity is refused by the schema pass, as are huge integers.
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _error(where, f"not a saved report (JSON nested deeper than {MAX_DEPTH})") from None
    except json.JSONDecodeError as exc:
        raise _error(where, f"not JSON: {exc}") from None
    except ValueError as exc:  # our NaN/Infinity check, or an over-long integer
        raise _error(where, f"not JSON this tool accepts: {exc}") from None


def _validated(data: Any, where: str, schema_file: str | None) -> dict[str, Any]:
    """``data`` checked against its schema (see :func:`parse_saved_json`), then redacted."""
    if not isinstance(data, dict):
        raise _error(where, _NOT_AN_OBJECT)
    if schema_file is None:
        kind = data.get("schema")
        if not isinstance(kind, str) or kind not in SCHEMA_FILES:
            known = ", ".join(SCHEMA_FILES)
            found = 'no "schema" field' if kind is None else f"unknown schema {kind!r}"[:120]
            raise _error(where, f"{found}; expected one of {known}")
        schema_file = SCHEMA_FILES[kind]
    else:
        kind = data.get("schema")
        expected = _schema(schema_file).get("properties", {}).get("schema", {}).get("const")
        if (
            isinstance(kind, str)
            and isinstance(expected, str)
            and kind in SCHEMA_FILES
            and _kind(kind) == _kind(expected)
        ):
            schema_file = SCHEMA_FILES[kind]  # another version of the same kind
    failure = _first_schema_error(data, schema_file)
    if failure is not None:
        raise _error(where, failure)
    # A file written before a redaction rule existed shows, once loaded, what a new run's
    # would: the model, and every output made from it, never sees the secret.
    return _redacted_checked(data)


def _redacted_checked(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`lagscope.redact.document` for a document the schema pass has checked: the
    columns of its records tables hold only numbers, booleans and nulls, so the redactor
    is not shown them (looking through them was most of its time on a big file)."""
    tables = list(_tables_in(data, _TABLE_DEPTH))
    columns = [table["columns"] for table in tables]
    for table in tables:
        table["columns"] = {}  # in its place: the keys keep their order
    try:
        return redact.document(data)
    finally:
        for table, column in zip(tables, columns, strict=True):
            table["columns"] = column


def load_saved_json(
    path: Path, schema_file: str | None = None, *, validate: bool = True
) -> dict[str, Any]:
    """Read, parse and validate a saved file (see the module docstring); raises a one-line
    LagscopeError (phase ``load``, exit 2; a :class:`SavedFileError` once the file is read)."""
    # Here, not at the top: --json output uses this module without reading any file.
    from lagscope.fileio import read_text

    holder: list[str] = []  # the text, dropped by the parser once parsed
    try:
        holder.append(read_text(path))
    except OSError as exc:
        raise LagscopeError(
            "load", f"cannot read {path}: {exc.strerror or exc}", ExitCode.USAGE
        ) from None
    except ValueError as exc:
        raise _error(str(path), str(exc)) from None
    return parse_saved_json(holder.pop(), str(path), schema_file, validate=validate)


def load_saved(
    path: Path,
    schema_file: str | None,
    model: Callable[[dict[str, Any]], T],
    *,
    validate: bool = True,
) -> T:
    """:func:`load_saved_json`, then ``model`` turns the dict into the command's report; a
    ValueError from ``model`` becomes the same one-line ``load`` error, naming ``path``."""
    with _collector_paused():
        data = load_saved_json(path, schema_file, validate=validate)
        try:
            return model(data)
        except ValueError as exc:
            raise _error(str(path), str(exc)) from None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a file's values and model are built:
    they hold no cycles, and the collector would otherwise walk the growing heap again
    every few thousand new objects (a third of building 100 000 records)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # What was made meanwhile joins the oldest generation unexamined (freeze, then
        # unfreeze): enabled as it is, the first allocation would walk it all as young
        # objects (0.1 s for 100 000 records); a later full collection still sees it.
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()

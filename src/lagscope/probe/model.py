"""The probe's report model: what one run measured, as frozen dataclasses.

This is the boundary between measuring and output. The runner produces
:class:`RequestRecord` values; :func:`lagscope.probe.report.build_report` turns them into a
:class:`ProbeReport`; renderers read only the report. :func:`to_dict` / :func:`from_dict`
give the versioned JSON form (``schema: "lagscope.probe/2"``, documented in
docs/probe.md and lagscope/schemas/probe-2.schema.json, its request records in columns:
:func:`table_from_records`), so a saved run can be rendered again; ``lagscope.probe/1``
files (one object per request) still load.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import chain, compress, islice, repeat
from operator import add, gt, is_not
from typing import Any, Literal, TypeVar

from lagscope.instrument.servertiming import Metric, believable
from lagscope.probe.stats import Comparison, Summary

__all__ = [
    "PHASES",
    "RESOLVE_SOURCES",
    "SCHEMA",
    "SCHEMAS",
    "TABLE_CODED",
    "TABLE_PLAIN",
    "AddressAttempt",
    "Family",
    "KeepAlive",
    "MetricSummary",
    "Outcome",
    "ProbeReport",
    "RequestRecord",
    "Series",
    "dropped_note",
    "from_dict",
    "record_from_dict",
    "record_to_dict",
    "records_from_json",
    "records_from_table",
    "table_from_records",
    "to_dict",
]

SCHEMA = "lagscope.probe/2"
# Every version this model reads: /1 kept one object per request (record_from_dict), /2 a
# table of columns (records_from_table).
SCHEMAS = ("lagscope.probe/1", SCHEMA)

# Phases in the order they happen. resolve/connect/tls exist only on new connections.
PHASES = ("resolve", "connect", "tls", "send", "wait", "receive", "total")

Headers = tuple[tuple[str, str], ...]
T = TypeVar("T")


# How the target's addresses were found, as the report says it.
RESOLVE_SOURCES = {
    "dns": "DNS",
    "pinned": "pinned by --resolve",
    "localhost": "loopback for a .localhost name, no DNS (RFC 6761)",
}

Family = Literal["ipv4", "ipv6"]
Outcome = Literal["connected", "refused", "timeout", "unreachable", "error"]


@dataclass(frozen=True)
class AddressAttempt:
    """One address tried while opening a connection, in the order tried."""

    address: str
    port: int
    family: Family
    outcome: Outcome
    ms: float
    error: str | None = None


# Slots, not a __dict__ per record: 23 fields in a dict took ~0.9 KB per record (loading
# 100 000 peaked at 195 MB with them, 138 MB without, and the memory's first touch was a
# tenth of the time); records_from_table sets the slots a column at a time.
@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request's timings. Phase fields are None where the phase did not happen."""

    series: str  # "cold" | "warm_first" | "warm"
    index: int  # position within its series, from 0
    connection: int  # ordinal of the TCP connection it ran on, from 0
    reused: bool  # ran on a connection that had carried an earlier request
    status: int
    http_version: str
    start_ms: float  # offset from the start of the run
    resolve_ms: float | None
    connect_ms: float | None
    tls_ms: float | None
    send_ms: float
    wait_ms: float
    receive_ms: float
    total_ms: float
    body_bytes: int
    keep_alive: bool  # the server left the connection open for another request
    attempts: tuple[AddressAttempt, ...] = ()
    server_timing: tuple[Metric, ...] = ()
    # The address the connection reached (None in files saved before it was recorded).
    server_address: str | None = None
    # First byte of the response to the end of its head; receive_ms − head_ms is the body's
    # own arrival, where a small-write (Nagle / delayed ACK) stall shows.
    head_ms: float | None = None
    # Response headers, names lower-cased, in the order received; credential values
    # redacted (lagscope.redact).
    response_headers: Headers = ()
    # Request headers as sent, credential values redacted.
    request_headers: Headers = ()
    # Server-Timing metrics whose dur cannot be true of this response (negative, or longer
    # than the exchange the client measured: servertiming.believable); kept out of
    # server_timing and every figure, said in the run's warnings (dropped_note).
    dropped_server_timing: tuple[Metric, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of a response header (``name`` lower-case), if present."""
        for key, value in self.response_headers:
            if key == name:
                return value
        return None

    def phase(self, name: str) -> float | None:
        value = getattr(self, f"{name}_ms")
        return None if value is None else float(value)

    def app_ms(self) -> float | None:
        """The app's own total, from its Server-Timing ``total`` (or ``app``) metric."""
        for wanted in ("total", "app"):
            for m in self.server_timing:
                if m.name == wanted and m.dur_ms is not None:
                    return m.dur_ms
        return None


@dataclass(frozen=True)
class MetricSummary:
    """A Server-Timing metric aggregated over one series."""

    name: str
    desc: str | None  # the first description seen
    count: int  # responses that carried the metric
    dur: Summary | None  # over the responses that gave a dur


@dataclass(frozen=True)
class Series:
    """One series of requests (cold, warm_first or warm) with its per-phase statistics."""

    name: str
    requests: tuple[RequestRecord, ...]
    phases: tuple[tuple[str, Summary], ...]
    server_timing: tuple[MetricSummary, ...]
    # Time to first byte minus the app's own total, where the app reports it.
    outside_app: Summary | None

    def stats(self, phase: str) -> Summary | None:
        for name, summary in self.phases:
            if name == phase:
                return summary
        return None


@dataclass(frozen=True)
class KeepAlive:
    """Whether the server kept connections open for the warm series."""

    # False when the server closed the connection after a response (Connection: close,
    # HTTP/1.0, or a close-delimited body), so the warm series ran on new connections.
    supported: bool
    reason: str | None
    # Times a reused connection was found closed by the server and the request was retried
    # on a new connection (idle timeouts).
    reconnects: int


@dataclass(frozen=True)
class ProbeReport:
    """A whole probe run: what was asked, every request, the statistics and the verdict."""

    schema: str
    tool_version: str
    url: str
    method: str
    started_at: str  # ISO 8601, UTC
    duration_ms: float
    host: str
    resolve_source: str  # "dns" | "pinned" | "localhost" (RESOLVE_SOURCES)
    addresses: tuple[str, ...]  # what resolution returned, in order
    series: tuple[Series, ...]
    comparisons: tuple[Comparison, ...]  # cold minus warm per phase
    keep_alive: KeepAlive
    verdict: str
    truncated: bool  # the run hit --max-time before all requests were made
    warnings: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]
    # The command line that produced the run, credentials redacted; () when not run from
    # the CLI or saved before it was recorded.
    command_line: tuple[str, ...] = ()

    def get_series(self, name: str) -> Series | None:
        for s in self.series:
            if s.name == name:
                return s
        return None


# --- JSON form --------------------------------------------------------------------------


def _round(value: float | None) -> float | None:
    # Microsecond resolution is what perf_counter_ns on a loaded machine can honestly give.
    return None if value is None else round(value, 4)


def _summary_to_dict(s: Summary) -> dict[str, Any]:
    return {f.name: (s.n if f.name == "n" else _round(getattr(s, f.name))) for f in fields(s)}


def _summary_from_dict(d: dict[str, Any]) -> Summary:
    return Summary(**{f.name: d[f.name] for f in fields(Summary)})


def _metric_to_dict(m: Metric) -> dict[str, Any]:
    return {"name": m.name, "dur_ms": m.dur_ms, "desc": m.desc, "params": dict(m.params)}


def _metric_from_dict(d: dict[str, Any]) -> Metric:
    return Metric(
        name=d["name"],
        dur_ms=d.get("dur_ms"),
        desc=d.get("desc"),
        params=tuple(dict(d.get("params") or {}).items()),
    )


def record_to_dict(r: RequestRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(r):
        value = getattr(r, f.name)
        if f.name == "attempts":
            out[f.name] = [{g.name: getattr(a, g.name) for g in fields(a)} for a in value]
            for a in out[f.name]:
                a["ms"] = _round(a["ms"])
        elif f.name == "server_timing":
            out[f.name] = [_metric_to_dict(m) for m in value]
        elif f.name == "dropped_server_timing":
            if value:  # absent when nothing was dropped, as in files saved before
                out[f.name] = [_metric_to_dict(m) for m in value]
        elif f.name in ("response_headers", "request_headers"):
            out[f.name] = [[k, v] for k, v in value]
        elif f.name.endswith("_ms"):
            out[f.name] = _round(value)
        else:
            out[f.name] = value
    return out


_RECORD_OPTIONAL = frozenset(
    {"server_address", "head_ms", "response_headers", "request_headers", "dropped_server_timing"}
)
# Computed once: dataclasses.fields() per record was a third of loading a big file.
_RECORD_REQUIRED = tuple(f.name for f in fields(RequestRecord) if f.name not in _RECORD_OPTIONAL)


def record_from_dict(d: dict[str, Any]) -> RequestRecord:
    kwargs = {name: d[name] for name in _RECORD_REQUIRED}
    kwargs["attempts"] = tuple(AddressAttempt(**a) for a in d["attempts"])
    # A file saved before impossible values were dropped (or written by hand) gets the
    # same rule as a live run.
    kept, dropped = believable(
        tuple(_metric_from_dict(m) for m in d["server_timing"]),
        d["send_ms"] + d["wait_ms"] + d["receive_ms"],
    )
    kwargs["server_timing"] = kept
    kwargs["server_address"] = d.get("server_address")
    kwargs["head_ms"] = d.get("head_ms")
    kwargs["response_headers"] = tuple((str(k), str(v)) for k, v in d.get("response_headers", ()))
    kwargs["request_headers"] = tuple((str(k), str(v)) for k, v in d.get("request_headers", ()))
    dropped += tuple(_metric_from_dict(m) for m in d.get("dropped_server_timing", ()))
    if dropped:
        kwargs["dropped_server_timing"] = dropped
    return RequestRecord(**kwargs)


def records_from_json(saved: Any) -> tuple[RequestRecord, ...]:
    """Records as either version saves them: a list of objects (/1) or a table (/2)."""
    if isinstance(saved, list):
        return tuple(record_from_dict(r) for r in saved)
    return records_from_table(saved)


def _series_records(i: int, saved: Any) -> tuple[RequestRecord, ...]:
    try:
        return records_from_json(saved)
    except ValueError as exc:  # where in the file: series[0].requests.columns.total_ms
        raise ValueError(f"series[{i}].{exc}") from None


def dropped_note(records: Iterable[RequestRecord]) -> str | None:
    """The warning for Server-Timing values left out of a run's figures, if any were."""
    count = 0
    responses = 0
    examples: dict[str, str] = {}
    for r in records:
        if r.dropped_server_timing:
            responses += 1
            for m in r.dropped_server_timing:
                count += 1
                if len(examples) < 3 and m.name not in examples:
                    shown = f"{m.dur_ms:.6g}" if m.dur_ms is not None else dict(m.params)["dur"]
                    why = "negative" if shown.startswith("-") else "longer than the request"
                    examples[m.name] = f"{m.name} dur={shown} ms ({why})"
    if not count:
        return None
    return (
        f"Server-Timing: {count} value(s) in {responses} response(s) dropped as impossible "
        f"(negative, or longer than the whole request as measured): {'; '.join(examples.values())}"
    )


# --- the columnar form of many records (lagscope.probe/2, lagscope.report/2) ------------
#
# Many request records as saved since ``lagscope.probe/2`` and ``lagscope.report/2``: one
# array per field (columns), not one object per request.
#
# The object-per-request form (``/1``) made ``json.loads`` build ~60 Python objects per
# request: 2.5 s and 450 MB for a 100 000-request file before any check ran. In columns the
# parser builds about one object per number, the checks run over whole arrays
# (:mod:`lagscope.schemacheck`), and a run's thousands of identical header lists are written
# and loaded once. docs/performance.md has the figures.
#
# The table (``$defs/requests`` in ``probe-2.schema.json`` and ``report-2.schema.json``)::
#
#     {"count": N,
#      "columns": {"index": [N integers], "total_ms": [N numbers], ..., "series": [N codes], ...},
#      "values": {"series": ["cold", "warm"], "response_headers": [[["server", "x"]], ...], ...}}
#
# - A *plain* column holds the field's value for each request, in order.
# - A *coded* column (:data:`TABLE_CODED`) holds, for each request, the index of its value in
#   ``values[field]``, where each distinct value is written once.
# - ``server_timing``'s values are metrics without their ``dur`` (``name``, ``desc``,
#   ``params``); the durations are the flat column ``server_timing_dur_ms``: every metric's
#   ``dur`` (null where it had none), request after request, in the metrics' order.
#
# :func:`table_from_records` writes the table; :func:`records_from_table` reads a
# schema-valid one back, checking what the schema cannot say (each column ``count`` long,
# each code inside its values), and raises ValueError naming the column and index.

# Plain columns: (field, rounded to 0.1 µs when written).
TABLE_PLAIN = (
    ("index", False),
    ("connection", False),
    ("reused", False),
    ("status", False),
    ("start_ms", True),
    ("resolve_ms", True),
    ("connect_ms", True),
    ("tls_ms", True),
    ("send_ms", True),
    ("wait_ms", True),
    ("receive_ms", True),
    ("total_ms", True),
    ("head_ms", True),
    ("body_bytes", False),
    ("keep_alive", False),
)
TABLE_CODED = (
    "series",
    "http_version",
    "server_address",
    "attempts",
    "server_timing",
    "dropped_server_timing",
    "response_headers",
    "request_headers",
)
_DURS = "server_timing_dur_ms"

MetricShape = tuple[str, str | None, tuple[tuple[str, str], ...]]


def _to_json(field: str, value: Any) -> Any:
    """A distinct value of a coded column as ``values[field]`` holds it."""
    if field == "attempts":
        return [
            {
                "address": a.address,
                "port": a.port,
                "family": a.family,
                "outcome": a.outcome,
                "ms": _round(a.ms),
                "error": a.error,
            }
            for a in value
        ]
    if field == "server_timing":
        return [{"name": n, "desc": d, "params": dict(p)} for n, d, p in value]
    if field == "dropped_server_timing":
        return [_metric_to_dict(m) for m in value]
    if field.endswith("_headers"):
        return [[k, v] for k, v in value]
    return value


def table_from_records(records: Sequence[RequestRecord]) -> dict[str, Any]:
    """The columns of ``records`` (see the module docstring)."""
    columns: dict[str, list[Any]] = {}
    for name, rounded in TABLE_PLAIN:
        raw = [getattr(r, name) for r in records]
        columns[name] = [_round(v) for v in raw] if rounded else raw
    codes: dict[str, dict[Hashable, int]] = {field: {} for field in TABLE_CODED}
    coded: dict[str, list[int]] = {field: [] for field in TABLE_CODED}
    durs: list[float | None] = []
    for r in records:
        shape = tuple((m.name, m.desc, m.params) for m in r.server_timing)
        durs.extend(m.dur_ms for m in r.server_timing)
        for field, value in (
            ("series", r.series),
            ("http_version", r.http_version),
            ("server_address", r.server_address),
            ("attempts", r.attempts),
            ("server_timing", shape),
            ("dropped_server_timing", r.dropped_server_timing),
            ("response_headers", r.response_headers),
            ("request_headers", r.request_headers),
        ):
            table = codes[field]
            code = table.get(value)
            if code is None:
                code = table[value] = len(table)
            coded[field].append(code)
    columns.update(coded)
    columns[_DURS] = durs
    return {
        "count": len(records),
        "columns": columns,
        "values": {field: [_to_json(field, v) for v in codes[field]] for field in TABLE_CODED},
    }


def _decode(field: str, items: list[Any]) -> list[Any]:
    """The distinct values of a coded column as the model holds them."""
    if field == "attempts":
        return [tuple(AddressAttempt(**a) for a in value) for value in items]
    if field == "server_timing":
        return [
            tuple((m["name"], m["desc"], tuple(m["params"].items())) for m in value)
            for value in items
        ]
    if field == "dropped_server_timing":
        return [
            tuple(
                Metric(m["name"], m["dur_ms"], m["desc"], tuple(m["params"].items())) for m in value
            )
            for value in items
        ]
    if field.endswith("_headers"):
        return [tuple((str(k), str(v)) for k, v in value) for value in items]
    return items


def _bad(where: str, message: str) -> ValueError:
    return ValueError(f"requests.{where}: {message}")


def _checked_codes(columns: dict[str, Any], values: list[list[Any]]) -> None:
    for field, table in zip(TABLE_CODED, values, strict=False):
        column = columns[field]
        if column and not (min(column) >= 0 and max(column) < len(table)):
            i = next(i for i, c in enumerate(column) if not 0 <= c < len(table))
            raise _bad(
                f"columns.{field}[{i}]",
                f"{column[i]} is not an index into values.{field} ({len(table)} values)",
            )


def _values_of(values: list[Any], codes: list[int]) -> Iterable[Any]:
    """A coded column's value for each request (its codes checked to be in range)."""
    if len(values) == 1:  # most columns of a run: one value, all codes 0
        return repeat(values[0], len(codes))
    return map(values.__getitem__, codes)


def _made(cls: type[T], dicts: Iterable[dict[str, Any]], n: int) -> list[T]:
    """``n`` instances of the frozen dataclass ``cls``, each given the next of ``dicts``
    (its fields' values by name, in the order the class declares them) as its __dict__.

    Why not ``cls(...)``: a frozen dataclass's __init__ sets each field through
    object.__setattr__ (23 calls per record: 0.8 s per 100 000 records); giving the new
    instance its __dict__ makes the same object (same fields, equality, hash and repr) in a
    fraction of that."""
    made = list(map(object.__new__, repeat(cls, n)))
    deque(map(object.__setattr__, made, repeat("__dict__"), dicts), maxlen=0)
    return made


def _slotted(cls: type[T], n: int, columns: dict[str, Iterable[Any]]) -> list[T]:
    """``n`` instances of the frozen, slotted dataclass ``cls``, each field set from its
    column (``n`` values each), a whole column at a time: a slot's own setter, as the
    dataclass's __init__ would (through object.__setattr__) one call at a time."""
    made = list(map(object.__new__, repeat(cls, n)))
    for f in fields(cls):  # type: ignore[arg-type]
        deque(map(getattr(cls, f.name).__set__, made, columns[f.name]), maxlen=0)
    return made


def _server_timing(
    columns: dict[str, Any],
    shapes: list[tuple[MetricShape, ...]],
    widths: list[int],
    dropped: list[Any],
) -> tuple[Iterable[tuple[Metric, ...]], Iterable[tuple[Metric, ...]]]:
    """Each request's kept and dropped Server-Timing metrics, in request order."""
    durs = columns[_DURS]
    # A metric without a dur is one shared object per distinct shape (most requests carry
    # the same few); a metric with one is made for it.
    bare = [tuple(Metric(n, None, d, p) for n, d, p in shape) for shape in shapes]
    metrics = list(chain.from_iterable(map(bare.__getitem__, columns["server_timing"])))
    present = list(map(is_not, durs, repeat(None)))
    known = list(compress(durs, present))
    timed = _made(
        Metric,
        [
            {"name": m.name, "dur_ms": dur, "desc": m.desc, "params": m.params}
            for m, dur in zip(compress(metrics, present), known, strict=True)
        ],
        len(known),
    )
    deque(map(metrics.__setitem__, compress(range(len(durs)), present), timed), maxlen=0)
    kept = map(tuple, map(islice, repeat(iter(metrics)), widths))
    gone = _values_of(dropped, columns["dropped_server_timing"])
    exchanges = list(
        map(add, map(add, columns["send_ms"], columns["wait_ms"]), columns["receive_ms"])
    )
    # Each dur against its request's exchange: a run drops impossible ones before it saves,
    # so this finds nothing in a file lagscope wrote, and the rule (servertiming.believable)
    # runs request by request only for a file made by hand or by another tool.
    limits = compress(chain.from_iterable(map(repeat, exchanges, widths)), present)
    if min(known, default=0.0) >= 0 and not any(map(gt, known, limits)):
        return kept, gone
    kept_each = list(kept)
    gone_each = list(gone)
    for i, metrics_of_one in enumerate(kept_each):
        if metrics_of_one:
            kept_each[i], more = believable(metrics_of_one, exchanges[i])
            gone_each[i] = more + gone_each[i]
    return kept_each, gone_each


def records_from_table(table: dict[str, Any]) -> tuple[RequestRecord, ...]:
    """The records of a schema-valid table; a ValueError names what the schema cannot
    catch (a column of another length, a code outside its values, durations that do not
    match the metrics), in one line."""
    requests = table["count"]
    columns = table["columns"]
    for name, column in columns.items():
        if name != _DURS and len(column) != requests:
            raise _bad(f"columns.{name}", f"{len(column)} values for {requests} requests")
    decoded = {field: _decode(field, table["values"][field]) for field in TABLE_CODED}
    _checked_codes(columns, list(decoded.values()))
    shapes = decoded["server_timing"]
    widths = list(map(list(map(len, shapes)).__getitem__, columns["server_timing"]))
    wanted = sum(widths)
    if len(columns[_DURS]) != wanted:
        raise _bad(f"columns.{_DURS}", f"{len(columns[_DURS])} values for {wanted} metrics")
    # The columns are joined by map, zip and islice, and the impossible-dur test runs over
    # whole columns (_server_timing): no per-record slicing, max() or indexing.
    by_field: dict[str, Iterable[Any]] = {name: columns[name] for name, _ in TABLE_PLAIN}
    for field in TABLE_CODED:
        by_field[field] = _values_of(decoded[field], columns[field])
    by_field["server_timing"], by_field["dropped_server_timing"] = _server_timing(
        columns, shapes, widths, decoded["dropped_server_timing"]
    )
    return tuple(_slotted(RequestRecord, requests, by_field))


def to_dict(report: ProbeReport) -> dict[str, Any]:
    return {
        "schema": SCHEMA,  # a file read from an older version is saved as this one
        "tool_version": report.tool_version,
        "url": report.url,
        "method": report.method,
        "started_at": report.started_at,
        "duration_ms": _round(report.duration_ms),
        "resolve": {
            "host": report.host,
            "source": report.resolve_source,
            "addresses": list(report.addresses),
        },
        "series": [
            {
                "name": s.name,
                "phases": {name: _summary_to_dict(summary) for name, summary in s.phases},
                "server_timing": [
                    {
                        "name": m.name,
                        "desc": m.desc,
                        "count": m.count,
                        "dur": None if m.dur is None else _summary_to_dict(m.dur),
                    }
                    for m in s.server_timing
                ],
                "outside_app": None if s.outside_app is None else _summary_to_dict(s.outside_app),
                "requests": table_from_records(s.requests),
            }
            for s in report.series
        ],
        "comparisons": [
            {
                "phase": c.phase,
                "diff_ms": _round(c.diff_ms),
                "diff_low_ms": _round(c.diff_low_ms),
                "diff_high_ms": _round(c.diff_high_ms),
                "significant": c.significant,
            }
            for c in report.comparisons
        ],
        "keep_alive": {
            "supported": report.keep_alive.supported,
            "reason": report.keep_alive.reason,
            "reconnects": report.keep_alive.reconnects,
        },
        "verdict": report.verdict,
        "truncated": report.truncated,
        "warnings": list(report.warnings),
        "options": dict(report.options),
        "command_line": list(report.command_line),
    }


def from_dict(data: dict[str, Any]) -> ProbeReport:
    """Rebuild a report from its JSON form. Raises KeyError/TypeError/ValueError if malformed."""
    if data.get("schema") not in SCHEMAS:
        raise ValueError(f"unsupported schema {data.get('schema')!r} (expected {SCHEMA!r})")
    series = tuple(
        Series(
            name=s["name"],
            requests=_series_records(i, s["requests"]),
            phases=tuple((k, _summary_from_dict(v)) for k, v in s["phases"].items()),
            server_timing=tuple(
                MetricSummary(
                    name=m["name"],
                    desc=m["desc"],
                    count=m["count"],
                    dur=None if m["dur"] is None else _summary_from_dict(m["dur"]),
                )
                for m in s["server_timing"]
            ),
            outside_app=None if s["outside_app"] is None else _summary_from_dict(s["outside_app"]),
        )
        for i, s in enumerate(data["series"])
    )
    return ProbeReport(
        schema=data["schema"],
        tool_version=data["tool_version"],
        url=data["url"],
        method=data["method"],
        started_at=data["started_at"],
        duration_ms=data["duration_ms"],
        host=data["resolve"]["host"],
        resolve_source=data["resolve"]["source"],
        addresses=tuple(data["resolve"]["addresses"]),
        series=series,
        comparisons=tuple(Comparison(**c) for c in data["comparisons"]),
        keep_alive=KeepAlive(**data["keep_alive"]),
        verdict=data["verdict"],
        truncated=data["truncated"],
        warnings=tuple(data["warnings"]),
        options=tuple(data["options"].items()),
        command_line=tuple(str(a) for a in data.get("command_line", ())),
    )

"""The probe's report model: what one run measured, as frozen dataclasses.

This is the boundary between measuring and output. The runner produces
:class:`RequestRecord` values; :func:`lagscope.probe.report.build_report` turns them into a
:class:`ProbeReport`; renderers read only the report. :func:`to_dict` / :func:`from_dict`
give the versioned JSON form (``schema: "lagscope.probe/1"``, documented in
docs/probe.md and lagscope/schemas/probe-1.schema.json), so a saved run can be rendered
again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

from lagscope.instrument.servertiming import Metric, believable
from lagscope.probe.stats import Comparison, Summary

__all__ = [
    "PHASES",
    "RESOLVE_SOURCES",
    "SCHEMA",
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
    "to_dict",
]

SCHEMA = "lagscope.probe/1"

# Phases in the order they happen. resolve/connect/tls exist only on new connections.
PHASES = ("resolve", "connect", "tls", "send", "wait", "receive", "total")

Headers = tuple[tuple[str, str], ...]


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


@dataclass(frozen=True)
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


def to_dict(report: ProbeReport) -> dict[str, Any]:
    return {
        "schema": report.schema,
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
                "requests": [record_to_dict(r) for r in s.requests],
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
    if data.get("schema") != SCHEMA:
        raise ValueError(f"unsupported schema {data.get('schema')!r} (expected {SCHEMA!r})")
    series = tuple(
        Series(
            name=s["name"],
            requests=tuple(record_from_dict(r) for r in s["requests"]),
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
        for s in data["series"]
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

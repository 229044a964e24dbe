"""HAR 1.2 export of a run: one entry per request, lagscope's phases mapped onto HAR's.

The mapping (HAR 1.2 ``timings``): ``blocked`` is -1 (the probe never queues a request),
``dns`` is the resolve phase, ``connect`` is TCP connect plus the TLS handshake (HAR counts
``ssl`` inside ``connect``), ``ssl`` the handshake alone, then ``send``, ``wait`` and
``receive``. A phase that did not happen is -1, so a request on a reused connection has
``dns``, ``connect`` and ``ssl`` -1, and ``time`` is the sum of the values that are not -1
(``ssl`` excluded, as it is already inside ``connect``). ``connection`` is a per-run TCP
connection id, ``serverIPAddress`` the address connected to, and credential header values
are redacted. lagscope's own fields go under ``_lagscope``: series (for a diagnosis, the
rung that made the request), index, reused, and the
response's Server-Timing metrics. Pure: no I/O.
"""

from __future__ import annotations

import datetime as _dt
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lagscope import redact
from lagscope.diagnose.model import DiagnoseReport
from lagscope.probe.model import ProbeReport, RequestRecord

__all__ = [
    "HarRenderer",
    "RunRecords",
    "diagnose_runs",
    "har_dict",
    "har_timings",
    "probe_runs",
    "render",
]

# HAR timings are milliseconds; three decimals is a microsecond, what the probe resolves.
_DECIMALS = 3


@dataclass(frozen=True)
class RunRecords:
    """The requests of one measured run, with what HAR needs to place them."""

    label: str | None  # rung or run name; prefixes connection ids when a report has several
    url: str
    method: str
    started_at: str  # ISO 8601
    records: Sequence[RequestRecord]
    # (series prefix, URL) for requests sent somewhere else than ``url`` (a diagnosis's
    # direct-to-app rung), first match wins.
    series_urls: tuple[tuple[str, str], ...] = ()

    def url_of(self, r: RequestRecord) -> str:
        for prefix, url in self.series_urls:
            if r.series.startswith(prefix):
                return url
        return self.url


def _r(ms: float) -> float:
    return round(ms, _DECIMALS)


def har_timings(r: RequestRecord) -> dict[str, float]:
    """HAR ``timings`` for one record; -1 where a phase does not apply."""
    new = not r.reused
    connect = (r.connect_ms or 0.0) + (r.tls_ms or 0.0)
    return {
        "blocked": -1,
        "dns": _r(r.resolve_ms) if new and r.resolve_ms is not None else -1,
        "connect": _r(connect) if new and r.connect_ms is not None else -1,
        "ssl": _r(r.tls_ms) if new and r.tls_ms is not None else -1,
        "send": _r(r.send_ms),
        "wait": _r(r.wait_ms),
        "receive": _r(r.receive_ms),
    }


def _time(t: dict[str, float]) -> float:
    # ssl is already inside connect.
    return _r(sum(v for k, v in t.items() if k != "ssl" and v != -1))


def _headers(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": n, "value": v} for n, v in redact.headers(pairs)]


def _header(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    for n, v in pairs:
        if n.lower() == name:
            return v
    return None


def _started(started_at: str, offset_ms: float) -> str:
    try:
        base = _dt.datetime.fromisoformat(started_at)
    except ValueError:
        base = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    if base.tzinfo is None:
        base = base.replace(tzinfo=_dt.timezone.utc)
    return (base + _dt.timedelta(milliseconds=offset_ms)).isoformat(timespec="milliseconds")


def _entry(run: RunRecords, r: RequestRecord) -> dict[str, Any]:
    timings = har_timings(r)
    http_version = f"HTTP/{r.http_version}"
    conn_id = str(r.connection) if run.label is None else f"{run.label}#{r.connection}"
    url = redact.url(run.url_of(r))
    query = urlsplit(url).query
    request_body = _header(r.request_headers, "content-length")
    entry: dict[str, Any] = {
        "startedDateTime": _started(run.started_at, r.start_ms),
        "time": _time(timings),
        "request": {
            "method": run.method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": _headers(r.request_headers),
            "queryString": [
                {"name": k, "value": v} for k, v in parse_qsl(query, keep_blank_values=True)
            ],
            "headersSize": -1,
            "bodySize": int(request_body) if request_body and request_body.isdigit() else 0,
        },
        "response": {
            "status": r.status,
            "statusText": "",
            "httpVersion": http_version,
            "cookies": [],
            "headers": _headers(r.response_headers),
            "content": {
                "size": r.body_bytes,
                "mimeType": _header(r.response_headers, "content-type") or "x-unknown",
            },
            "redirectURL": redact.url(_header(r.response_headers, "location") or ""),
            "headersSize": -1,
            "bodySize": r.body_bytes,
        },
        "cache": {},
        "timings": timings,
        "connection": conn_id,
        "_lagscope": {
            "series": r.series,
            "index": r.index,
            "reused": r.reused,
            "total_ms": _r(r.total_ms),
            "serverTiming": [
                {"name": m.name, "dur": m.dur_ms, "desc": m.desc} for m in r.server_timing
            ],
        },
    }
    if run.label is not None:
        entry["_lagscope"]["rung"] = run.label
    if r.server_address is not None:
        entry["serverIPAddress"] = r.server_address
    return entry


def _entries(runs: Sequence[RunRecords]) -> Iterator[dict[str, Any]]:
    for run in runs:
        for r in sorted(run.records, key=lambda rec: rec.start_ms):
            yield _entry(run, r)


def har_dict(runs: Sequence[RunRecords], tool_version: str, comment: str = "") -> dict[str, Any]:
    """The HAR document for these runs, entries in the order the requests started."""
    return _document(list(_entries(runs)), tool_version, comment)


def _document(entries: list[Any], tool_version: str, comment: str) -> dict[str, Any]:
    log: dict[str, Any] = {
        "version": "1.2",
        "creator": {"name": "lagscope", "version": tool_version},
        "entries": entries,
    }
    if comment:
        log["comment"] = comment
    return {"log": log}


def probe_runs(report: ProbeReport) -> list[RunRecords]:
    return [
        RunRecords(
            label=None,
            url=report.url,
            method=report.method,
            started_at=report.started_at,
            records=[r for s in report.series for r in s.requests],
        )
    ]


def diagnose_runs(report: DiagnoseReport) -> list[RunRecords]:
    options = dict(report.options)
    direct = options.get("direct")
    return [
        RunRecords(
            label=None,
            url=report.final_url or report.url,
            method=str(options.get("method", "GET")),
            started_at=report.started_at,
            records=report.requests,
            series_urls=(("direct-", str(direct)),) if direct else (),
        )
    ]


class HarRenderer:
    def render(self, report: ProbeReport | DiagnoseReport) -> str:
        if isinstance(report, DiagnoseReport):
            worst = next((f for f in sorted(report.findings, key=lambda f: f.rank)), None)
            comment = "" if worst is None else f"{worst.id}: {worst.title}"
            runs = diagnose_runs(report)
        else:
            comment = report.verdict
            runs = probe_runs(report)
        return _text(runs, report.tool_version, comment)


# The text of json.dumps(har_dict(...), indent=1): each entry at depth 3 of the document.
_ENTRY_INDENT = "\n   "


def _text(runs: Sequence[RunRecords], tool_version: str, comment: str) -> str:
    """``json.dumps(har_dict(runs, ...), indent=1)``, one entry encoded at a time: the
    entries' dicts of a 100 000-request run held at once took 1.9 GB; their text alone is
    what the file holds."""
    marker = f"lagscope-har-entries-{secrets.token_hex(8)}"  # no string of a run is this
    head, found, tail = json.dumps(
        _document([marker], tool_version, comment), indent=1, ensure_ascii=False
    ).partition(json.dumps(marker))
    assert found, "the entries marker is in the document"
    parts = [head]
    for i, entry in enumerate(_entries(runs)):
        if i:
            parts.append("," + _ENTRY_INDENT)
        parts.append(json.dumps(entry, indent=1, ensure_ascii=False).replace("\n", _ENTRY_INDENT))
    if len(parts) == 1:  # no entries: json.dumps writes the empty list on one line
        return json.dumps(_document([], tool_version, comment), indent=1, ensure_ascii=False) + "\n"
    parts.append(tail + "\n")
    return "".join(parts)


def render(report: ProbeReport | DiagnoseReport) -> str:
    """The HAR 1.2 JSON text of a report."""
    return HarRenderer().render(report)

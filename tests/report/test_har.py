"""HAR 1.2 export: valid against the schema, phases mapped as the spec says, no secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lagscope.diagnose import DiagnoseReport
from lagscope.probe.model import ProbeReport, from_dict, to_dict
from lagscope.report import har
from support.saved_v1 import as_v1

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "schemas" / "har-1.2.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@pytest.fixture(scope="module")
def doc(taxed_probe: ProbeReport) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(har.render(taxed_probe))
    return data


def test_validates_against_the_har_schema(doc: dict[str, Any]) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(doc)]
    assert errors == []
    assert doc["log"]["version"] == "1.2"
    assert doc["log"]["creator"]["name"] == "lagscope"


def test_the_schema_rejects_what_the_spec_forbids(doc: dict[str, Any]) -> None:
    entry = json.loads(json.dumps(doc["log"]["entries"][0]))
    entry["timings"]["connect"] = -2
    assert not VALIDATOR.is_valid({"log": {**doc["log"], "entries": [entry]}})
    entry = json.loads(json.dumps(doc["log"]["entries"][0]))
    entry["serverIPAddress"] = "not-an-ip"
    assert not VALIDATOR.is_valid({"log": {**doc["log"], "entries": [entry]}})
    entry = json.loads(json.dumps(doc["log"]["entries"][0]))
    entry["custom"] = 1  # custom fields must start with "_"
    assert not VALIDATOR.is_valid({"log": {**doc["log"], "entries": [entry]}})
    entry = json.loads(json.dumps(doc["log"]["entries"][0]))
    del entry["timings"]["wait"]
    assert not VALIDATOR.is_valid({"log": {**doc["log"], "entries": [entry]}})


def test_one_entry_per_request_in_start_order(
    taxed_probe: ProbeReport, doc: dict[str, Any]
) -> None:
    entries = doc["log"]["entries"]
    records = [r for s in taxed_probe.series for r in s.requests]
    assert len(entries) == len(records) == 10 + 1 + 30
    starts = [e["startedDateTime"] for e in entries]
    assert starts == sorted(starts)


def test_reused_connection_has_no_dns_connect_or_ssl(doc: dict[str, Any]) -> None:
    entries = doc["log"]["entries"]
    reused = [e for e in entries if e["_lagscope"]["reused"]]
    new = [e for e in entries if not e["_lagscope"]["reused"]]
    assert len(reused) == 30 and len(new) == 11
    for e in reused:
        t = e["timings"]
        assert t["connect"] == -1 and t["dns"] == -1 and t["ssl"] == -1
    for e in new:
        assert e["timings"]["connect"] >= 0
        assert e["timings"]["ssl"] == -1  # plain HTTP: no handshake
    assert all(e["timings"]["blocked"] == -1 for e in entries)


def test_new_connections_have_distinct_ids_and_reused_share_one(doc: dict[str, Any]) -> None:
    entries = doc["log"]["entries"]
    new_ids = [e["connection"] for e in entries if not e["_lagscope"]["reused"]]
    assert len(set(new_ids)) == len(new_ids) == 11
    warm_ids = {e["connection"] for e in entries if e["_lagscope"]["series"] != "cold"}
    assert len(warm_ids) == 1


def test_timings_add_up_to_time(taxed_probe: ProbeReport, doc: dict[str, Any]) -> None:
    totals = sorted(r.total_ms for s in taxed_probe.series for r in s.requests)
    for e in doc["log"]["entries"]:
        t = e["timings"]
        # ssl is part of connect in HAR, so it is not added twice.
        parts = [v for k, v in t.items() if k != "ssl" and v != -1]
        assert e["time"] == pytest.approx(sum(parts), abs=1e-9)
        assert e["time"] == pytest.approx(e["_lagscope"]["total_ms"], abs=0.01)
    assert sorted(e["_lagscope"]["total_ms"] for e in doc["log"]["entries"]) == pytest.approx(
        totals, abs=0.001
    )


def test_the_tax_shows_on_new_connections_only(doc: dict[str, Any]) -> None:
    entries = doc["log"]["entries"]
    cold = [e["time"] for e in entries if e["_lagscope"]["series"] == "cold"]
    warm = [e["time"] for e in entries if e["_lagscope"]["series"] == "warm"]
    # A 100 ms tax against loopback noise of a few ms.
    assert min(cold) > 90
    assert sorted(warm)[len(warm) // 2] < 50


def test_server_address_request_and_custom_fields(doc: dict[str, Any]) -> None:
    e = doc["log"]["entries"][0]
    assert e["serverIPAddress"] == "127.0.0.1"
    assert e["request"]["method"] == "GET"
    assert e["request"]["queryString"] == [
        {"name": "page", "value": "1"},
        {"name": "q", "value": "x"},
    ]
    assert e["response"]["status"] == 200
    assert e["response"]["content"]["mimeType"] == "application/json"
    assert e["response"]["content"]["size"] == len(b'{"items": []}')
    names = [m["name"] for m in e["_lagscope"]["serverTiming"]]
    assert "total" in names and "thread" in names
    assert e["_lagscope"]["series"] in ("cold", "warm_first")


def test_credentials_are_redacted(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "top-secret" not in text and "sid=abc" not in text and "s3cr3t" not in text
    e = doc["log"]["entries"][0]
    request = {h["name"].lower(): h["value"] for h in e["request"]["headers"]}
    response = {h["name"].lower(): h["value"] for h in e["response"]["headers"]}
    assert request["authorization"] == "***"
    assert request["cookie"] == "***"
    assert request["host"].startswith("127.0.0.1:")
    assert response["set-cookie"] == "***"


def test_saved_run_without_the_newer_fields_still_exports(taxed_probe: ProbeReport) -> None:
    data = as_v1(json.loads(json.dumps(to_dict(taxed_probe))))  # saved before the columns
    data.pop("command_line")
    for s in data["series"]:
        for r in s["requests"]:
            for key in ("server_address", "head_ms", "request_headers", "response_headers"):
                r.pop(key)
    old = from_dict(data)
    doc = json.loads(har.render(old))
    assert VALIDATOR.is_valid(doc)
    e = doc["log"]["entries"][0]
    assert "serverIPAddress" not in e
    assert e["request"]["headers"] == []
    assert e["response"]["content"]["mimeType"] == "x-unknown"


def test_a_run_renders_the_same_from_either_version_of_its_file(
    taxed_probe: ProbeReport, taxed_diagnosis: DiagnoseReport
) -> None:
    """The columns (/2) change the file, not what is made from it: HAR and HTML of a run
    loaded from its /2 file equal those from the same run saved as /1 (the HTML names the
    file's version, nothing else differs)."""
    from lagscope.diagnose.model import from_dict as diagnose_from_dict
    from lagscope.diagnose.model import to_dict as diagnose_to_dict
    from lagscope.report import html

    probe_new = json.loads(json.dumps(to_dict(taxed_probe)))
    diag_new = json.loads(json.dumps(diagnose_to_dict(taxed_diagnosis)))
    for new, model in ((probe_new, from_dict), (diag_new, diagnose_from_dict)):
        old = as_v1(new)
        a, b = model(new), model(old)
        assert har.render(a) == har.render(b)
        assert html.render(a).replace(new["schema"], "X") == html.render(b).replace(
            old["schema"], "X"
        )


def test_the_har_text_is_the_documents_json_entry_by_entry(
    taxed_probe: ProbeReport, taxed_diagnosis: DiagnoseReport
) -> None:
    """render encodes one entry at a time (a big run's entries as dicts took 1.9 GB); the
    text is exactly json.dumps of the whole document, with and without entries."""
    from lagscope.report.har import diagnose_runs, har_dict, probe_runs

    empty = from_dict({**json.loads(json.dumps(to_dict(taxed_probe))), "series": []})
    for report, runs in (
        (taxed_probe, probe_runs(taxed_probe)),
        (taxed_diagnosis, diagnose_runs(taxed_diagnosis)),
        (empty, probe_runs(empty)),
    ):
        comment = (
            report.verdict
            if isinstance(report, ProbeReport)
            else next(f"{f.id}: {f.title}" for f in sorted(report.findings, key=lambda f: f.rank))
        )
        whole = json.dumps(
            har_dict(runs, report.tool_version, comment), indent=1, ensure_ascii=False
        )
        assert har.render(report) == whole + "\n"

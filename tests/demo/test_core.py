"""The demo's pure parts: the visit plan, figures from samples, JSON round trip, the table
and the story (every number in it comes from the report), options bounds, redaction."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import socket
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from hypothesis import given, settings

from lagscope.demo.edit import EDITED_HEADING, edit_template, editable_templates
from lagscope.demo.model import (
    HTML_PAGE,
    JSON_PAGE,
    SCHEMA,
    BrowserPage,
    DemoReport,
    EditFigures,
    Sample,
    VersionResult,
    report_from_dict,
    report_to_dict,
    summarize,
)
from lagscope.demo.render import JsonRenderer, TextRenderer, load_json, story
from lagscope.demo.runner import DemoOptions, _check_ports, _Database, https_plan
from lagscope.demo.versions import VERSIONS
from lagscope.demo.visit import FETCH, PAGE, visit_plan
from lagscope.diagnose.model import Affects, Figure, Finding, Severity
from lagscope.errors import LagscopeError
from lagscope.netutil import free_port, set_listen_options
from support.hostile import assert_terminal_safe, hostile_text

SCHEMA_FILE = Path(__file__).parents[2] / "src" / "lagscope" / "schemas" / "demo-1.schema.json"
REPORT_SCHEMA_FILE = SCHEMA_FILE.with_name("report-2.schema.json")


def _finding(
    finding_id: str, severity: Severity, cost_ms: float, affects: Affects, fix: str
) -> Finding:
    """A finding as diagnose makes it (the demo keeps diagnose's own)."""
    return Finding(
        id=finding_id,
        title=f"{finding_id} title",
        severity=severity,
        cost_ms=cost_ms,
        affects=affects,
        evidence=(Figure("cold p50", 320.5, "ms", 310.0, 330.0),),
        fix=(fix, "then measure again"),
        confirm="lagscope probe URL",
    )


def test_visit_plan_page_first_then_parallel_rounds() -> None:
    rounds = visit_plan(parallel=3, warm=5)
    assert [len(r) for r in rounds] == [1, 3, 3, 3, 3, 2]
    assert rounds[0][0].path == PAGE and rounds[0][0].connection == 1
    assert all(r.path == FETCH for rnd in rounds[1:] for r in rnd)
    phases = [r.phase for rnd in rounds for r in rnd]
    assert phases == ["visit"] * 10 + ["warm"] * 5
    # Each round uses each connection at most once: they run in parallel.
    for rnd in rounds:
        assert len({r.connection for r in rnd}) == len(rnd)


def test_visit_plan_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="parallel"):
        visit_plan(parallel=0, warm=1)
    with pytest.raises(ValueError, match="warm"):
        visit_plan(parallel=1, warm=-1)


def _samples(visit_ms: list[float], warm_ms: list[float], db: int = 0) -> tuple[Sample, ...]:
    out = []
    for i, ms in enumerate(visit_ms + warm_ms, start=1):
        out.append(
            Sample(
                index=i,
                path=FETCH,
                connection=1,
                new_connection=i == 1,
                elapsed_ms=ms,
                status=200,
                db_connects=1 if i <= db else 0,
                phase="visit" if i <= len(visit_ms) else "warm",
            )
        )
    return tuple(out)


def _version(
    name: str, visit: list[float], warm: list[float], db: int, **kw: object
) -> VersionResult:
    v = VersionResult(
        name=name,
        title=name,
        settings=(("k", "v"),),
        url="http://127.0.0.1:1",
        startup_ms=100.0,
        samples=_samples(visit, warm, db),
        **kw,  # type: ignore[arg-type]
    )
    return summarize(v)


def _report(tax: float = 300.0) -> DemoReport:
    before = _version(
        "before",
        [700.0] + [400.0] * 11,
        [330.0, 340.0, 350.0],
        15,
        db_connects_after_start=15,
        http_connections=3,
    )
    tuned = _version(
        "hand-tuned",
        [650.0, 320.0, 320.0, 320.0] + [12.0] * 8,
        [11.0, 13.0],
        4,
        db_connects_after_start=4,
        http_connections=3,
        pg_backends_after_start=4,
    )
    ours = _version(
        "lagscope",
        [330.0] + [12.0] * 11,
        [10.0, 12.0, 30.0],
        0,
        db_connects_after_start=0,
        http_connections=3,
        pg_backends_after_start=0,
    )
    tuned = dataclasses.replace(tuned, settings=(("waitress", "threads=4, backlog=2048"),))
    before = dataclasses.replace(
        before,
        findings=(
            _finding("db-connect-per-request", "critical", 312.0, "every request", "keep"),
            _finding("uncompressed-text", "info", 0.2, "every request", "gzip"),
        ),
        diagnose={"schema": "x", "findings": []},
    )
    ours = dataclasses.replace(
        ours,
        findings=(
            _finding(
                "connection-setup-tax", "warning", 300.0, "first request per connection", "reuse"
            ),
        ),
        diagnose={"schema": "x", "findings": []},
    )
    return DemoReport(
        tax_ms=tax,
        database="postgresql",
        database_source="throwaway cluster",
        nginx=False,
        quick=True,
        machine="test box",
        versions=(before, tuned, ours),
        wall_s=12.5,
    )


def test_summarize_takes_first_ten_and_warm_percentiles() -> None:
    v = _version("x", [100.0] + [10.0] * 11, [5.0, 6.0, 7.0, 8.0, 100.0], 2)
    assert v.first_request_ms == 100.0
    assert v.first10_total_ms == 190.0  # only the first ten of the twelve visit requests
    assert v.first10_max_ms == 100.0
    assert v.warm_p50_ms == 7.0
    assert v.warm_p90_ms > 8.0
    assert v.requests_with_db_connect == 2


def test_lagscope_report_renders_a_saved_demo_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lagscope.cli import main

    saved, page = tmp_path / "demo.json", tmp_path / "demo.html"
    saved.write_text(JsonRenderer().render(_report()), encoding="utf-16")  # PowerShell's `>`
    result = CliRunner().invoke(main, ["report", str(saved), "-o", str(page)])
    assert result.exit_code == 0, result.stderr
    text = page.read_text(encoding="utf-8")
    assert text.lower().startswith("<!doctype html>")
    assert "hand-tuned" in text and "db-connect-per-request" in text
    # The versions' embedded diagnose reports here are stubs diagnose cannot read: said.
    assert "its saved form is not readable" in text
    # A demo file holds no requests in HAR form: one line, exit 2, nothing written.
    har_file = tmp_path / "demo.har"
    refused = CliRunner().invoke(main, ["report", str(saved), "--har", str(har_file)])
    assert refused.exit_code == 2 and refused.stderr.startswith("lagscope: options: --har")
    assert not har_file.exists()
    # A file that is not one gets the loader's one line, naming the file.
    saved.write_text('{"schema": "lagscope.demo/1", "tax_ms": "x"}', encoding="utf-8")
    bad = CliRunner().invoke(main, ["report", str(saved), "-o", str(page)])
    assert bad.exit_code == 2 and bad.stderr.startswith(f"lagscope: load: {saved}: ")


def test_json_round_trip_and_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    report = _report()
    text = JsonRenderer().render(report)
    data = json.loads(text)
    assert data["schema"] == SCHEMA
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert load_json(json.loads(text)) == report
    assert report_from_dict(report_to_dict(report)) == report
    with pytest.raises(ValueError, match=r"lagscope\.demo/1"):
        report_from_dict({**data, "schema": "lagscope.probe/1"})


def test_table_has_each_version_and_ratios_to_before() -> None:
    text = TextRenderer().render(_report())
    header = next(line for line in text.splitlines() if "hand-tuned" in line and "before" in line)
    assert header.index("before") < header.index("hand-tuned") < header.index("lagscope")
    first = next(line for line in text.splitlines() if line.startswith("first request"))
    assert "700 ms" in first and "(0.93x)" in first and "(0.47x)" in first
    assert "lagscope: connection-setup-tax (warning, 300 ms, first request per connection)" in text
    assert "diagnose on lagscope: still connection-setup-tax (300 ms" in text
    assert "before: db-connect-per-request (critical, 312 ms, every request) (+1 info)" in text
    assert "hand-tuned: (no diagnose run)" in text


def test_story_numbers_come_from_the_report() -> None:
    report = _report()
    text = " ".join(story(report))
    before = report.version("before")
    assert f"{before.first_request_ms:.0f} ms" in text
    assert "300 ms" in text
    assert "4 request(s) still opened a database connection" in text
    assert "(one per waitress thread: it runs 4)" in text
    assert 'diagnose named it on "before": db-connect-per-request (312 ms, every request).' in text
    # Change a measured value: the story changes with it.
    slower = dataclasses.replace(
        report,
        tax_ms=123.0,
        versions=(dataclasses.replace(before, first_request_ms=4321.0), *report.versions[1:]),
    )
    text2 = " ".join(story(slower))
    assert "4321 ms" in text2 and "paid 123 ms" in text2 and "paid 300 ms" not in text2
    control = " ".join(story(dataclasses.replace(report, tax_ms=0.0)))
    assert "No tax" in control


@pytest.mark.parametrize("tax", [-1.0, math.nan, math.inf, -1e-300, 99999999999.0])
def test_tax_out_of_range_is_a_usage_error(tax: float) -> None:
    with pytest.raises(LagscopeError, match="--tax"):
        DemoOptions(tax_ms=tax)


def test_tax_bounds_and_port_base() -> None:
    assert DemoOptions(tax_ms=0.0).tax_ms == 0.0
    assert DemoOptions(tax_ms=1e-300).tax_ms == 1e-300
    assert DemoOptions(tax_ms=10_000).tax_ms == 10_000
    assert DemoOptions(quick=True).warm_requests < DemoOptions().warm_requests
    for bad in (80, 65534, 99999999999):
        with pytest.raises(LagscopeError, match="--port-base"):
            DemoOptions(port_base=bad)


def test_versions_table_holds_the_story_settings() -> None:
    names = [v.name for v in VERSIONS]
    assert names == ["before", "hand-tuned", "lagscope"]
    tuned = dict(VERSIONS[1].waitress)
    assert tuned == {
        "threads": "4",
        "connection_limit": "200",
        "channel_timeout": "3600",
        "cleanup_interval": "30",
        "backlog": "2048",
    }
    assert VERSIONS[0].conn_max_age == 0 and VERSIONS[0].waitress == ()
    assert VERSIONS[1].conn_max_age is None
    assert not VERSIONS[0].nginx_keepalive


def test_a_file_with_one_line_findings_loads_and_renders(tmp_path: Path) -> None:
    """Files written before the demo kept diagnose's whole findings hold each as one line's
    worth; they still load (as findings without evidence) and `lagscope report` renders them."""
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads(JsonRenderer().render(_report()))
    for v in data["versions"]:
        v["findings"] = [
            {k: f[k] for k in ("id", "severity", "cost_ms", "affects")} | {"fix": f["fix"][0]}
            for f in v["findings"]
        ]
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    loaded = load_json(data)
    for old, new in zip(_report().versions, loaded.versions, strict=True):
        assert [(f.id, f.severity, f.cost_ms, f.affects, f.fix[:1]) for f in old.findings] == [
            (f.id, f.severity, f.cost_ms, f.affects, f.fix) for f in new.findings
        ]
        assert all(f.evidence == () and f.title == f.id for f in new.findings)
    assert TextRenderer().render(loaded) == TextRenderer().render(_report())

    from click.testing import CliRunner

    from lagscope.cli import main

    saved, page = tmp_path / "old.json", tmp_path / "old.html"
    saved.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["report", str(saved), "-o", str(page)])
    assert result.exit_code == 0, result.stderr
    assert "db-connect-per-request" in page.read_text(encoding="utf-8")


def test_the_demo_schema_holds_diagnose_finding_as_report_schema_has_it() -> None:
    """demo-1.schema.json carries copies of report-1's finding and what it refers to (the
    checker reads one file); they must not drift apart."""
    demo = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]
    report = json.loads(REPORT_SCHEMA_FILE.read_text(encoding="utf-8"))["$defs"]
    for name in ("finding", "figure", "finding_profile", "profile_hotspot", "profile_frame"):
        assert demo[name] == report[name], name


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://app:pw@127.0.0.1/items",
        "postgresql://[::1",
        "postgresql://app:pw@127.0.0.1:99999/items",
        "postgresql://app:pw@127.0.0.1:5432/",
        "postgresql://app:pw@127.0.0.1/items\nx",
        "",
    ],
)
def test_bad_database_urls_fail_before_anything_starts(dsn: str) -> None:
    with pytest.raises(LagscopeError) as info:
        DemoOptions(database=dsn)
    assert info.value.exit_code == 2
    assert ":pw@" not in info.value.one_line()


def test_the_database_is_parsed_once_and_apps_get_it_without_the_password() -> None:
    options = DemoOptions(database="postgresql://app:s%40cret@db.local:6543/items?sslmode=disable")
    conn = options.database_conn
    assert conn is not None and conn is options.database_conn
    assert (conn.password, conn.host, conn.port) == ("s@cret", "db.local", 6543)
    db = _Database("postgresql", "--database", conn=conn)
    assert db.address == ("db.local", 6543)
    for_app = db.for_app("127.0.0.1", 7000, "lagscope-demo-before")
    assert "s@cret" not in for_app and "sslmode=disable" in for_app
    assert (
        "host=127.0.0.1 port=7000" in for_app and "application_name=lagscope-demo-before" in for_app
    )
    assert DemoOptions(database="sqlite").database_conn is None


def test_text_output_survives_a_cp1252_console() -> None:
    # A Windows console in cp1252 cannot print what it cannot encode; the table, findings
    # and story stay within it.
    text = TextRenderer().render(_report())
    assert text.encode("cp1252").decode("cp1252") == text


def test_public_api_names_exist() -> None:
    import importlib

    for module_name in (
        "lagscope.demo",
        "lagscope.demo.model",
        "lagscope.demo.render",
        "lagscope.demo.html",
        "lagscope.demo.runner",
        "lagscope.demo.visit",
        "lagscope.demo.diag",
        "lagscope.demo.versions",
        "lagscope.demo.procs",
        "lagscope.demo.nginx",
        "lagscope.demo.child",
        "lagscope.demo.pgcluster",
    ):
        module = importlib.import_module(module_name)
        assert module.__doc__, module_name
        for name in module.__all__:
            assert hasattr(module, name), (module_name, name)


def test_docs_option_table_names_every_other_flag_of_the_command() -> None:
    # The numbers are generated (tests/test_settings_table.py); the switches and files are
    # written by hand, so their rows are checked against the command itself.
    from lagscope.demo.cli import demo
    from lagscope.settings_table import rows

    text = (Path(__file__).parents[2] / "docs" / "demo.md").read_text(encoding="utf-8")
    section = text.split("## Options", 1)[1].split("\n## ", 1)[0]
    documented = {
        flag
        for line in section.splitlines()
        if line.startswith("| `-")
        for flag in re.findall(r"`(-[-\w]+)", line.split(" | ")[0])
    }
    table_flags = {r.flag for r in rows(DemoOptions)}
    command_flags = {
        max(p.opts, key=len) for p in demo.params if isinstance(p, click.Option) and p.opts
    }
    assert table_flags <= documented
    # -o is written short in the table; the command knows it as --output too.
    documented = {"--output" if f == "-o" else f for f in documented}
    assert documented == command_flags, (
        f"missing from docs/demo.md: {sorted(command_flags - documented)}; "
        f"not flags of lagscope demo: {sorted(documented - command_flags)}"
    )


def _with_browser(report: DemoReport) -> DemoReport:
    pages = {
        "before": (1320.0, 700.0, 6, 650.0),
        "hand-tuned": (950.0, 330.0, 6, 620.0),
        "lagscope": (930.0, 320.0, 6, 610.0),
    }
    versions = []
    for v in report.versions:
        cold, json_cold, conns, added = pages[v.name]
        versions.append(
            dataclasses.replace(
                v,
                browser_pages=(
                    BrowserPage(HTML_PAGE, cold, 340.0, 11, conns, 0, added),
                    BrowserPage(JSON_PAGE, json_cold, 330.0, 1, 1, 0, 300.0),
                ),
            )
        )
    return dataclasses.replace(report, versions=tuple(versions), browser="chromium 156")


def test_browser_rows_story_and_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    report = _with_browser(_report())
    text = TextRenderer().render(report)
    cold = next(line for line in text.splitlines() if line.startswith("browser: HTML page cold"))
    assert "1320 ms" in cold and "(0.72x)" in cold
    assert any(line.startswith("browser: JSON page cold") for line in text.splitlines())
    assert "over 6 connections (11 requests), the JSON page in 700 ms over 1" in text
    assert "pay a second" in text
    data = json.loads(JsonRenderer().render(report))
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert load_json(data) == report
    # Without a browser the rows are left out, and a saved run without them still loads.
    plain = TextRenderer().render(_report())
    assert "browser: HTML" not in plain
    old = json.loads(JsonRenderer().render(_report()))
    del old["browser"]
    for v in old["versions"]:
        del v["browser_pages"]
    jsonschema.validate(old, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert load_json(old) == _report()


def test_edit_rows_schema_and_a_run_saved_without_them() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    figures = {
        "before": EditFigures("restart", 2100.0, 330.0, 950.0, 1, True),
        "hand-tuned": EditFigures("restart", 2000.0, 20.0, 640.0, 1, True),
        "lagscope": EditFigures("reload", 1300.0, 15.0, 16.0, 0, True),
    }
    report = dataclasses.replace(
        _report(),
        versions=tuple(dataclasses.replace(v, edit=figures[v.name]) for v in _report().versions),
    )
    lines = TextRenderer().render(report).splitlines()
    row = next(line for line in lines if line.startswith("first page after an edit"))
    assert "950 ms" in row and "16 ms (0.02x)" in row
    opened = next(line for line in lines if line.startswith("  connections it opened"))
    assert opened.split()[-3:] == ["1", "1", "0"]
    data = json.loads(JsonRenderer().render(report))
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert load_json(data) == report
    # A run saved before the row existed still loads, and renders without it.
    old = json.loads(JsonRenderer().render(_report()))
    for v in old["versions"]:
        del v["edit"]
    jsonschema.validate(old, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    assert load_json(old) == _report()
    assert "first page after an edit" not in TextRenderer().render(_report())


def test_the_edit_changes_a_copy_never_the_installed_template(tmp_path: Path) -> None:
    import lagscope.refapp

    installed = Path(lagscope.refapp.__file__).parent / "templates" / "lagscope_demo" / "items.html"
    before = installed.read_bytes()
    root = editable_templates(tmp_path, "lagscope")
    copy = root / "lagscope_demo" / "items.html"
    assert copy.read_bytes() == before
    edit_template(root)
    assert EDITED_HEADING in copy.read_text(encoding="utf-8")
    assert installed.read_bytes() == before
    with pytest.raises(ValueError, match="has no"):
        edit_template(root)  # already edited: the heading is gone


def test_html_page_opens_with_a_chart_of_the_three_versions() -> None:
    pytest.importorskip("jinja2")
    from lagscope.demo.html import comparison, render

    report = _with_browser(_report())
    groups, height = comparison(report)
    assert [g.title for g in groups] == [
        "first request",
        "first 10 requests, total",
        "warm p50",
        "browser: HTML page, cold load",
    ]
    assert height > 0
    for g in groups:
        assert [b.version for b in g.bars] == ["before", "hand-tuned", "lagscope"]
        # Each figure on its own scale: the longest bar is full width, the rest in proportion.
        longest = max(b.w for b in g.bars)
        top = max(b.ms for b in g.bars)
        for b in g.bars:
            assert b.w == pytest.approx(max(1.0, b.ms / top * longest), rel=1e-6)
    page = render(report)
    assert page.index('<svg class="compare"') < page.index("<table>")
    assert "<pre>" not in page
    # Without a browser the chart has three groups.
    assert len(comparison(_report())[0]) == 3


def _time_wait_on(port: int) -> None:
    """Leave a TIME_WAIT socket on 127.0.0.1:port and nothing listening: the listener's side
    closes first, as a server that ends a connection does."""
    with socket.socket() as listener:
        set_listen_options(listener)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server's side closes first: TIME_WAIT stays on its port
        client.recv(1)
        client.close()


def test_https_is_on_by_default_when_the_browser_runs() -> None:
    def have(*names: str) -> Callable[[str], bool]:
        return lambda module: module in names

    every = have("granian", "cryptography")
    default = DemoOptions()
    assert https_plan(default, True, every) == (True, None)
    # Without a browser nothing would show HTTP/2: plain HTTP, no note.
    assert https_plan(default, False, every) == (False, None)
    assert https_plan(DemoOptions(https=False), True, every) == (False, None)
    asked = DemoOptions(https_asked=True)
    assert https_plan(asked, False, every) == (True, None)
    # The default falls back with a note naming what to install; --https given fails.
    on, note = https_plan(default, True, have("cryptography"))
    assert not on and note is not None and "granian not installed" in note
    with pytest.raises(LagscopeError) as info:
        https_plan(asked, True, have("granian"))
    assert info.value.exit_code == 8 and "lagscope[https]" in info.value.message
    # Behind nginx the TLS is nginx's: granian is not needed.
    assert https_plan(DemoOptions(nginx=True), True, have("cryptography")) == (True, None)


def _free_run_of_ports(count: int) -> int:
    """A port with the ``count - 1`` after it free too (the demo checks a run of them);
    other tests take ports meanwhile, so a few tries."""
    for _ in range(50):
        base = free_port()
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as probe:
                    set_listen_options(probe)
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError(f"no run of {count} free ports found")


def test_port_base_takes_a_port_that_only_has_time_wait_sockets() -> None:
    port = _free_run_of_ports(len(VERSIONS))
    _time_wait_on(port)
    _check_ports(DemoOptions(port_base=port))
    with socket.socket() as busy:  # a listener, though, is refused
        set_listen_options(busy)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(LagscopeError, match="is not free"):
            _check_ports(DemoOptions(port_base=port))


@settings(max_examples=30, deadline=None)
@given(hostile_text)
def test_no_control_character_from_a_loaded_run_reaches_the_terminal(s: str) -> None:
    """A shared lagscope.demo/1 file may hold anything in its strings."""
    report = _report()
    versions = tuple(dataclasses.replace(v, diagnose_error=s, url=s) for v in report.versions)
    hostile = dataclasses.replace(report, machine=s, notes=(s,), versions=versions)
    assert_terminal_safe(TextRenderer().render(hostile), color=False)


def test_quick_leaves_the_edit_row_out_unless_it_is_asked_for() -> None:
    assert DemoOptions().edit_row
    assert not DemoOptions(quick=True).edit_row
    assert DemoOptions(quick=True, edit_asked=True).edit_row
    assert not DemoOptions(edit=False).edit_row

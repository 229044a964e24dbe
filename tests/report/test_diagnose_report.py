"""A diagnosis of a taxed stack as HTML (in Chromium) and HAR: the ghost at a glance.

The stack taxes every new connection by 100 ms and makes each worker's first request
60 ms slower; the page must put the tax on top with its cost, show each finding with the
JSON's cost, and the HAR must carry every request the ladder made.
"""

from __future__ import annotations

import html as html_text
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from lagscope.cli import main
from lagscope.diagnose import DiagnoseReport
from lagscope.diagnose.model import to_dict
from lagscope.diagnose.render import JsonRenderer
from lagscope.report import har, html
from lagscope.report.charts import fmt_ms
from lagscope.report.write import as_saved
from support.chromium import CHROMIUM, Page, decode_png, open_page

HAR_SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "schemas" / "har-1.2.schema.json").read_text()
)
ARTIFACTS = Path(__file__).parents[1] / "artifacts"


def test_the_diagnosis_found_the_tax_and_the_warmup(taxed_diagnosis: DiagnoseReport) -> None:
    # The fixture's premise; the page tests below rely on it.
    ids = [f.id for f in sorted(taxed_diagnosis.findings, key=lambda f: f.rank)]
    assert ids[0] == "connection-setup-tax"
    assert "worker-warmup" in ids


def test_html_headline_is_the_worst_finding_with_cost_and_fix(
    taxed_diagnosis: DiagnoseReport,
) -> None:
    page = html.render(taxed_diagnosis)
    worst = sorted(taxed_diagnosis.findings, key=lambda f: f.rank)[0]
    assert worst.cost_ms is not None
    head = page[page.index('id="headline"') : page.index('id="findings"')]
    assert worst.id in head and f"{fmt_ms(worst.cost_ms)} ms" in head
    assert "Fix:" in head
    assert "top-secret" not in page


def test_har_of_a_diagnosis_validates_and_keeps_every_request(
    taxed_diagnosis: DiagnoseReport,
) -> None:
    doc: dict[str, Any] = json.loads(har.render(taxed_diagnosis))
    validator = jsonschema.Draft202012Validator(
        HAR_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert [e.message for e in validator.iter_errors(doc)] == []
    entries = doc["log"]["entries"]
    assert len(entries) == len(taxed_diagnosis.requests)
    for e in entries:
        if e["_lagscope"]["reused"]:
            assert e["timings"]["connect"] == -1
        parts = [v for k, v in e["timings"].items() if k != "ssl" and v != -1]
        assert e["time"] == pytest.approx(sum(parts), abs=1e-9)
    new_ids = [e["connection"] for e in entries if not e["_lagscope"]["reused"]]
    assert len(new_ids) == len(set(new_ids))
    direct = dict(taxed_diagnosis.options)["direct"]
    assert any(e["request"]["url"] == direct for e in entries)
    assert "top-secret" not in json.dumps(doc)


def test_report_command_renders_a_saved_diagnosis(
    taxed_diagnosis: DiagnoseReport, tmp_path: Path
) -> None:
    saved = tmp_path / "diag.json"
    saved.write_text(JsonRenderer().render(taxed_diagnosis), encoding="utf-8")
    assert json.loads(saved.read_text())["schema"] == "lagscope.report/2"
    result = CliRunner().invoke(
        main,
        ["report", str(saved), "-o", str(tmp_path / "d.html"), "--har", str(tmp_path / "d.har")],
    )
    assert result.exit_code == 0, result.stderr
    again = (tmp_path / "d.html").read_text(encoding="utf-8")
    # The JSON's rounded numbers, exactly as --html on the live run writes them.
    assert again == html.render(as_saved(taxed_diagnosis))
    assert json.loads((tmp_path / "d.har").read_text())["log"]["entries"]


def test_saved_and_reloaded_diagnosis_renders_the_same_page(
    taxed_diagnosis: DiagnoseReport,
) -> None:
    once = as_saved(taxed_diagnosis)
    assert html.render(as_saved(once)) == html.render(once)
    assert har.render(as_saved(once)) == har.render(once)


# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(
    taxed_diagnosis: DiagnoseReport, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Page, str]]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    path = tmp_path_factory.mktemp("html") / "diagnose.html"
    path.write_text(html.render(taxed_diagnosis), encoding="utf-8")
    with open_page(path) as page:
        yield page, path.resolve().as_uri()


@pytest.mark.chromium
def test_chromium_no_requests_no_errors_and_a_kept_screenshot(loaded: tuple[Page, str]) -> None:
    page, url = loaded
    assert page.requested_urls() == [url]
    assert page.console_errors() == []
    _, _, rows = decode_png(page.thumbnail_png())
    assert len({row[i : i + 3] for row in rows for i in range(0, len(row), 4)}) > 50
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-diagnose.png").write_bytes(page.screenshot_png())


@pytest.mark.chromium
def test_chromium_dom_has_each_finding_id_with_the_jsons_cost(
    loaded: tuple[Page, str], taxed_diagnosis: DiagnoseReport
) -> None:
    page, _ = loaded
    data = to_dict(taxed_diagnosis)
    assert data["findings"]
    for f in data["findings"]:
        card = page.evaluate(f"document.getElementById('finding-{f['id']}').innerText")
        assert f["id"] in card
        if f["cost_ms"] is not None:
            assert f"{fmt_ms(f['cost_ms'])} ms" in card
    first = page.evaluate("document.querySelector('ol.findings li').id")
    assert first == "finding-connection-setup-tax"


@pytest.mark.chromium
def test_chromium_waterfall_shows_setup_on_new_connections_only(
    loaded: tuple[Page, str],
) -> None:
    page, _ = loaded
    rows = page.evaluate(
        "[...document.querySelectorAll('#waterfall-chart g.wrow')]"
        ".map(g => [g.classList[1], g.querySelectorAll('rect.ph-connect').length])"
    )
    assert rows
    assert all(n == (1 if kind == "new" else 0) for kind, n in rows)
    assert {kind for kind, _ in rows} == {"new", "reused"}


@pytest.mark.chromium
def test_chromium_prints_to_pdf(loaded: tuple[Page, str]) -> None:
    page, _ = loaded
    pdf = page.pdf()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-diagnose.pdf").write_bytes(pdf)


def test_diagnose_cli_writes_no_secret_anywhere(tmp_path: Path) -> None:
    """A URL password, a secret query value and secret-looking headers of several spellings
    reach none of the outputs: terminal, JSON, HTML (the command line included), HAR."""
    from lagscope.instrument.wsgi import WsgiServerTimingMiddleware
    from support.wsgi import waitress_server

    from .conftest import WarmingApp

    page, har_file, saved = tmp_path / "d.html", tmp_path / "d.har", tmp_path / "d.json"
    secrets = ("hunter2", "URLPW77", "QTOKEN5", "XAUTH9", "CSRF3")
    with waitress_server(WsgiServerTimingMiddleware(WarmingApp()), threads=2) as (host, port):
        url = f"http://admin:URLPW77@{host}:{port}/?access_token=QTOKEN5&page=1"
        result = CliRunner().invoke(
            main,
            ["diagnose", url, "--quick", "-H", "Authorization: Bearer hunter2",
             "-H", "X-Auth-Token: XAUTH9", "--header=X-CSRFToken: CSRF3",
             "--html", str(page), "--har", str(har_file), "-o", str(saved)],
        )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    text = page.read_text(encoding="utf-8")
    shown = f"http://admin:***@{host}:{port}/?access_token=***&page=1"
    assert f"lagscope diagnose {shown}" in result.stdout
    assert f"<h1>{html_text.escape(shown)}</h1>" in text
    command = html_text.escape(f"lagscope diagnose '{shown}' --quick")
    assert command.replace("&#x27;", "&#39;") in text
    assert "Authorization: ***" in text and "X-Auth-Token: ***" in text
    for output in (text, har_file.read_text(), saved.read_text(), result.stdout, result.stderr):
        assert not [s for s in secrets if s in output]
    assert json.loads(har_file.read_text())["log"]["entries"]


@pytest.mark.parametrize(
    "change",
    ["no-findings", "no-budgets", "no-requests", "nothing", "costs-unknown", "info-only"],
)
def test_sparse_diagnoses_still_render(taxed_diagnosis: DiagnoseReport, change: str) -> None:
    from lagscope.diagnose.model import from_dict
    from lagscope.probe.model import table_from_records

    data = json.loads(json.dumps(to_dict(taxed_diagnosis)))
    if change in ("no-findings", "nothing"):
        data["findings"] = []
    if change in ("no-budgets", "nothing"):
        data["budgets"] = []
    if change in ("no-requests", "nothing"):
        data["requests"] = table_from_records(())
    if change == "nothing":
        data["rungs"] = []
    for f in data["findings"]:
        if change == "costs-unknown":
            f["cost_ms"] = None
        if change == "info-only":
            f["severity"] = "info"
    report = from_dict(data)
    page = html.render(report)
    assert page.rstrip().endswith("</html>")
    if change == "costs-unknown":
        assert "cost not measurable from here" in page
    if change in ("info-only", "no-findings", "nothing"):
        assert "No problem found" in page
    assert json.loads(har.render(report))["log"]["version"] == "1.2"

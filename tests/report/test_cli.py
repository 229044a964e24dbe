"""``probe --html/--har`` and ``lagscope report`` end to end through click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lagscope.cli import main
from lagscope.errors import LagscopeError
from lagscope.probe.model import ProbeReport
from lagscope.probe.render import JsonRenderer
from support.wsgi import waitress_server


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response(  # type: ignore[operator]
        "200 OK", [("Content-Length", "2"), ("Server-Timing", "total;dur=0.001")]
    )
    return [b"ok"]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_probe_writes_html_and_har_with_the_redacted_command_line(tmp_path: Path) -> None:
    page, har_file, saved = tmp_path / "r.html", tmp_path / "r.har", tmp_path / "r.json"
    with waitress_server(_app) as (host, port):
        url = f"http://{host}:{port}/"
        code, _, err = _run(
            "probe", url, "--cold", "2", "--warm", "3", "-H", "Authorization: Bearer hunter2",
            "--html", str(page), "--har", str(har_file), "-o", str(saved),
        )  # fmt: skip
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert "hunter2" not in text and "hunter2" not in har_file.read_text()
    assert "hunter2" not in saved.read_text()
    data = json.loads(saved.read_text())
    assert data["command_line"][:3] == ["lagscope", "probe", url]
    assert "Authorization: ***" in data["command_line"]
    assert "lagscope probe" in text and "Authorization: ***" in text
    entries = json.loads(har_file.read_text())["log"]["entries"]
    assert len(entries) == 2 + 1 + 3


def test_report_renders_a_saved_probe_run(taxed_probe: ProbeReport, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(JsonRenderer().render(taxed_probe))
    code, out, err = _run("report", str(saved), "-o", str(tmp_path / "a.html"))
    assert code == 0, err
    assert out == ""
    page = (tmp_path / "a.html").read_text(encoding="utf-8")
    assert taxed_probe.verdict.split(";")[0] in page
    code, _, err = _run("report", str(saved), "--har", str(tmp_path / "a.har"))
    assert code == 0, err
    assert json.loads((tmp_path / "a.har").read_text())["log"]["version"] == "1.2"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema": "lagscope.other/7", "x": 1}', "unknown schema 'lagscope.other/7'"),
        ('{"x": 1}', 'no "schema" field'),
        ("[1, 2]", 'no "schema" field'),
        ("not json", "not JSON"),
        ('{"schema": "lagscope.probe/1"}', "$: 'tool_version' is a required property"),
    ],
)
def test_report_refuses_what_it_cannot_read_in_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    saved = tmp_path / "bad.json"
    saved.write_text(content)
    code, _, err = _run("report", str(saved), "-o", str(tmp_path / "x.html"))
    assert code == 2
    assert err.startswith("lagscope: load: ") and message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "x.html").exists()


def test_report_needs_an_output_and_a_readable_file(tmp_path: Path) -> None:
    code, _, err = _run("report", str(tmp_path / "run.json"))
    assert code == 2 and "give -o FILE.html and/or --har FILE.har" in err
    code, _, err = _run("report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "x.html"))
    assert code == 2 and err.startswith("lagscope: load: cannot read") and err.count("\n") == 1


def test_unwritable_output_is_exit_8(taxed_probe: ProbeReport, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(JsonRenderer().render(taxed_probe))
    code, _, err = _run("report", str(saved), "-o", str(tmp_path / "no" / "such" / "x.html"))
    assert code == 8 and err.startswith("lagscope: output: cannot write")


def test_missing_report_extra_is_one_line_exit_8(taxed_probe: ProbeReport, tmp_path: Path) -> None:
    # A separate interpreter where Jinja2 cannot be imported, as without lagscope[report].
    import subprocess
    import sys

    saved = tmp_path / "run.json"
    saved.write_text(JsonRenderer().render(taxed_probe))
    code = (
        "import sys; sys.modules['jinja2'] = None; from lagscope.cli import main; "
        f"main(['report', {str(saved)!r}, '-o', {str(tmp_path / 'x.html')!r}])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 8
    assert done.stderr == (
        "lagscope: html: HTML reports need Jinja2: pip install 'lagscope[report]'\n"
    )
    assert not (tmp_path / "x.html").exists()
    # HAR needs no extra.
    code = code.replace("'-o'", "'--har'").replace("x.html", "x.har")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_report_never_replaces_its_input(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text('{"schema": "lagscope.probe/1"}')
    for args in (
        ["-o", str(saved)],
        ["--har", str(saved)],
        ["-o", str(tmp_path / "." / "run.json")],
    ):
        code, _, err = _run("report", str(saved), *args)
        assert code == 2 and "is the input" in err
    assert saved.read_text() == '{"schema": "lagscope.probe/1"}'


def test_outputs_are_checked_before_measuring(tmp_path: Path) -> None:
    """Nothing listens on port 9: measuring would fail with exit 4. The check comes first."""
    missing = tmp_path / "missing" / "r.json"
    for command in ("probe", "diagnose"):
        code, _, err = _run(command, "http://127.0.0.1:9/", "-o", str(missing))
        assert code == 8 and "no such directory" in err, err
        code, _, err = _run(command, "http://127.0.0.1:9/", "-o", str(tmp_path / "x"),
                            "--har", str(tmp_path / "x"))  # fmt: skip
        assert code == 2 and "same file" in err, err


def test_a_failed_write_keeps_the_other_outputs_and_the_terminal_view(tmp_path: Path) -> None:
    """A write that fails after the check (the directory went away) loses nothing else."""
    from lagscope.outputs import Outputs, show

    with waitress_server(_app) as (host, port):
        code, _, _ = _run("probe", f"http://{host}:{port}/", "--cold", "1", "--warm", "2",
                          "-o", str(tmp_path / "run.json"))  # fmt: skip
    assert code == 0
    from lagscope.probe.render import load_json

    report = load_json((tmp_path / "run.json").read_text())
    page = tmp_path / "r.html"
    outputs = Outputs(False, tmp_path / "gone" / "r.json", page, None, None)
    printed: list[str] = []

    def view(color: bool, width: int) -> str:
        printed.append("view")
        return ""

    with pytest.raises(LagscopeError) as info:
        show(report, lambda: "{}", outputs, view)
    assert info.value.exit_code == 8 and page.read_text().startswith("<!doctype html>")
    assert printed == ["view"]

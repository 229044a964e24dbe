"""``lagscope probe`` end to end through click: output forms, saved runs, gates, errors.

Errors must be one line on stderr with the documented exit code and no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from lagscope.cli import main
from support.net import free_port
from support.saved_v1 import as_v1
from support.wsgi import waitress_server

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "src" / "lagscope" / "schemas" / "probe-2.schema.json").read_text()
)


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response(
        "200 OK",
        [
            ("Content-Length", "2"),  # type: ignore[operator]
            ("Server-Timing", "total;dur=0.001"),
        ],
    )
    return [b"ok"]


@pytest.fixture(scope="module")
def url() -> object:
    with waitress_server(_app) as (host, port):
        yield f"http://{host}:{port}/"


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_json_output_matches_the_documented_schema(url: str) -> None:
    code, out, err = _run("probe", url, "--cold", "3", "--warm", "5", "--json")
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["schema"] == "lagscope.probe/2"
    assert [s["name"] for s in data["series"]] == ["cold", "warm_first", "warm"]


def test_terminal_view_without_tty_has_no_escape_codes(url: str) -> None:
    code, out, _ = _run("probe", url, "--cold", "2", "--warm", "3", env={"NO_COLOR": "1"})
    assert code == 0
    assert "\x1b[" not in out
    assert "Verdict:" in out and "phase (ms)" in out and "total" in out


def test_output_is_saved_and_can_be_rendered_again(url: str, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    code, first, _ = _run("probe", url, "--cold", "2", "--warm", "3", "-o", str(saved))
    assert code == 0 and saved.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    code, again, _ = _run("probe", "--load", str(saved))
    assert code == 0
    # Same report, same view (the header line carries the run's own start time).
    assert again.splitlines()[0] == first.splitlines()[0]
    code, out, _ = _run("probe", "--load", str(saved), "--json")
    assert json.loads(out) == json.loads(saved.read_text())


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_output_through_a_symlink_and_load_of_a_utf16_copy(url: str, tmp_path: Path) -> None:
    real = tmp_path / "runs" / "latest.json"
    real.parent.mkdir()
    link = tmp_path / "run.json"
    link.symlink_to(real)
    code, _, err = _run("probe", url, "--cold", "1", "--warm", "2", "-o", str(link))
    assert code == 0, err
    assert link.is_symlink() and real.is_file()
    # PowerShell 5.1's `Get-Content run.json > copy.json` writes UTF-16 with a byte-order mark.
    copy = tmp_path / "copy.json"
    copy.write_text(real.read_text(encoding="utf-8"), encoding="utf-16")
    code, out, err = _run("probe", "--load", str(copy), "--json")
    assert code == 0, err
    assert json.loads(out) == json.loads(real.read_text())


def test_budget_gate(url: str) -> None:
    code, _, err = _run("probe", url, "--cold", "0", "--warm", "3", "--budget", "10000")
    assert code == 0, err
    code, _, err = _run("probe", url, "--cold", "0", "--warm", "3", "--budget", "0.000001")
    assert code == 1
    assert err.startswith("lagscope: budget: warm p50") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["probe", "ftp://example.com/"], 2, "lagscope: url: unsupported scheme"),
        (["probe"], 2, "lagscope: options: missing URL"),
        (["probe", "http://127.0.0.1:1/", "-H", "broken"], 2, "lagscope: options: invalid header"),
        (["probe", "http://127.0.0.1:1/", "--cold", "0", "--warm", "0"], 2, "lagscope: options:"),
        (["probe", "http://127.0.0.1:1/", "-4", "-6"], 2, "lagscope: options:"),
        (["probe", "http://127.0.0.1:1/", "--resolve", "x"], 2, "lagscope: options: --resolve"),
        (["probe", "http://127.0.0.1:1/", "-X", "CONNECT"], 2, "lagscope: options: CONNECT"),
        (["probe", "http://127.0.0.1:1/", "-X", "É"], 2, "lagscope: options: invalid method"),
        (["probe", "http://127.0.0.1:1/", "-H", "X-A: é"], 2, "lagscope: options: header"),
        (["probe", "http://127.0.0.1:1/", "-H", "Content-Length: 9"], 2, "lagscope: options:"),
        (["probe", "--load", "/nonexistent/run.json"], 2, "lagscope: load: cannot read"),
        (["probe", "http://127.0.0.1/", "-6"], 3, "lagscope: resolve:"),
        (["probe", "http://127.0.0.1:{closed}/"], 4, "lagscope: connect: 127.0.0.1:"),
        # Numbers: finite and inside the documented range, refused before any socket.
        (["probe", "http://127.0.0.1:{closed}/", "--rate", "nan"], 2, "lagscope: options: --rate"),
        (["probe", "http://127.0.0.1:{closed}/", "--rate", "1e-300"], 2, "lagscope: options:"),
        (["probe", "http://127.0.0.1:{closed}/", "--budget", "nan"], 2, "lagscope: options:"),
        (["probe", "http://127.0.0.1:{closed}/", "--max-body", "-1"], 2, "lagscope: options:"),
        (["probe", "http://127.0.0.1:{closed}/", "--timeout", "inf"], 2, "lagscope: options:"),
        (["probe", "--load", "/nonexistent/run.json", "--budget", "nan"], 2, "lagscope: options:"),
        (["probe", "--load", "/nonexistent/run.json", "--rate", "nan"], 2, "lagscope: options:"),
    ],
)
def test_errors_are_one_line_with_documented_codes(args: list[str], code: int, start: str) -> None:
    args = [a.replace("{closed}", str(free_port())) for a in args]
    got, _, err = _run(*args)
    assert got == code
    assert err.startswith(start)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_load_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/9"}')
    code, _, err = _run("probe", "--load", str(bad))
    assert code == 2 and "unsupported schema" in err
    bad.write_text("not json")
    code, _, err = _run("probe", "--load", str(bad))
    assert code == 2 and "not JSON" in err


def test_load_of_hostile_files_is_one_line_with_exit_2(url: str, tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    code, _, err = _run("probe", url, "--cold", "1", "--warm", "2", "-o", str(saved))
    assert code == 0, err
    good = json.loads(saved.read_text())
    bad_total = as_v1(json.loads(saved.read_text()))  # a file saved before the columns
    bad_total["series"][0]["requests"][0]["total_ms"] = "abc"
    bad_column = json.loads(saved.read_text())
    bad_column["series"][0]["requests"]["columns"]["total_ms"][0] = "abc"
    unknown_series = json.loads(saved.read_text())
    unknown_series["series"][0]["name"] = "lukewarm"
    cases = {
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        "abc.json": (json.dumps(bad_total), "$.series[0].requests[0].total_ms: 'abc' is not of"),
        "column.json": (
            json.dumps(bad_column),
            "$.series[0].requests.columns.total_ms[0]: 'abc' is not of",
        ),
        "nan.json": (
            saved.read_text().replace(
                f'"duration_ms": {good["duration_ms"]}', '"duration_ms": NaN'
            ),
            "NaN is not a number JSON allows",
        ),
        "series.json": (json.dumps(unknown_series), "$.series[0].name: 'lukewarm' is not one of"),
    }
    for name, (text, words) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        code, out, err = _run("probe", "--load", str(path))
        assert code == 2, (name, err)
        assert err.startswith(f"lagscope: load: {path}: ") and words in err, (name, err)
        assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_unwritable_output_keeps_measurements_out_of_a_half_written_file(
    url: str, tmp_path: Path
) -> None:
    code, _, err = _run(
        "probe", url, "--cold", "1", "--warm", "1", "-o", str(tmp_path / "missing-dir" / "run.json")
    )
    assert code == 8 and err.startswith("lagscope: output: cannot write")

"""``lagscope diagnose`` on the command line: exit codes, one-line errors, saved reports."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from lagscope.cli import main
from lagscope.inject import ConnectionTax, Injector, Route
from support import badservers
from support.net import free_port
from support.pg import PgCluster
from support.wsgi import waitress_server

SCHEMA = json.loads(
    (
        Path(__file__).parents[2] / "src" / "lagscope" / "schemas" / "report-2.schema.json"
    ).read_text()
)


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["diagnose", *args])


def test_healthy_stack_exits_0_and_the_json_validates(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with waitress_server(hello) as (host, port):
        result = invoke(f"http://{host}:{port}/", "--quick", "--json", "-o", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    jsonschema.validate(data, SCHEMA)
    assert json.loads(out.read_text()) == data
    again = invoke("--load", str(out))
    assert again.exit_code == 0
    assert "No findings" in again.output


def test_a_ghost_exits_1_and_the_saved_report_renders_the_same(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    with (
        waitress_server(hello) as upstream,
        Injector([Route(("127.0.0.1", 0), upstream, [ConnectionTax(150)])]) as inj,
    ):
        host, port = inj.address(0)[:2]
        result = invoke(f"http://{host}:{port}/", "--quick", "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "connection-setup-tax" in result.output
    loaded = invoke("--load", str(out))
    assert loaded.exit_code == 1
    assert loaded.output == result.output


def test_a_saved_report_with_huge_numbers_is_one_line_exit_2_naming_the_column(
    tmp_path: Path,
) -> None:
    """A hand-edited report/2 file with overflowing values in its request columns (every
    request's wait_ms and total_ms at 1.7e308), or a 400-digit duration: ``diagnose --load``
    and ``report`` refuse it at load, in one line naming where, never an OverflowError."""
    out = tmp_path / "report.json"
    with waitress_server(hello) as (host, port):
        assert invoke(f"http://{host}:{port}/", "--quick", "-o", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    columns = data["requests"]["columns"]
    columns["total_ms"] = columns["wait_ms"] = [1.7e308] * data["requests"]["count"]
    floats = tmp_path / "bigfloat.json"
    floats.write_text(json.dumps(data))
    bigint = tmp_path / "bigint.json"
    bigint.write_text(json.dumps({**json.loads(out.read_text()), "duration_ms": 10**400}))
    for path, where in ((floats, "$.requests.columns.wait_ms[0]"), (bigint, "$.duration_ms")):
        for result in (
            invoke("--load", str(path)),
            CliRunner().invoke(main, ["report", str(path), "-o", str(tmp_path / "x.html")]),
        ):
            assert result.exit_code == 2, result.output
            assert result.output.count("\n") == 1, result.output
            assert f"load: {path}: {where}: " in result.output
            assert "out of range" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("handler", "code"),
    [(badservers.not_http, 7), (badservers.silent, 5), (badservers.close_without_reply, 7)],
)
def test_hostile_servers_are_one_line_and_an_exit_code(
    handler: badservers.Handler, code: int
) -> None:
    with badservers.serve(handler) as port:
        result = invoke(f"http://127.0.0.1:{port}/", "--quick", "--timeout", "0.3")
    assert result.exit_code == code, result.output
    assert result.output.startswith("lagscope: ")
    assert result.output.count("\n") == 1


def test_refused_is_exit_4() -> None:
    result = invoke(f"http://127.0.0.1:{free_port()}/", "--quick")
    assert result.exit_code == 4
    assert "refused" in result.output and result.output.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "nan"],
        ["--timeout", "1e-300"],
        ["--max-time", "99999999999"],
        ["--budget", "nan"],
        ["--budget", "-1"],
    ],
)
def test_nonsense_numbers_are_usage_errors(args: list[str]) -> None:
    result = invoke("http://127.0.0.1:9/", *args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1


def test_bad_dsn_never_shows_the_password() -> None:
    with waitress_server(hello) as (host, port):
        result = invoke(
            f"http://{host}:{port}/", "--quick", "--database", "postgresql://u:hunter2@[::1"
        )
    assert result.exit_code == 2, result.output
    assert "hunter2" not in result.output
    assert result.output.count("\n") == 1


def test_unreachable_database_never_shows_the_password() -> None:
    dsn = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/items"
    with waitress_server(hello) as (host, port):
        result = invoke(f"http://{host}:{port}/", "--quick", "--database", dsn)
    assert result.exit_code == 4, result.output
    assert "hunter2" not in result.output
    assert "database" in result.output


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["url", "keywords"])
def test_database_rung_measures_and_hides_the_password(pg_cluster: PgCluster, form: str) -> None:
    dsn = (
        f"postgresql://{pg_cluster.user}:hunter2@127.0.0.1:{pg_cluster.port}/postgres"
        if form == "url"
        else f"host=127.0.0.1 port={pg_cluster.port} user={pg_cluster.user} password=hunter2"
    )
    with waitress_server(hello) as (host, port):
        result = invoke(f"http://{host}:{port}/", "--quick", "--json", "--database", dsn)
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    data = json.loads(result.output)
    jsonschema.validate(data, SCHEMA)
    rung = next(r for r in data["rungs"] if r["name"] == "database")
    figures = {f["name"]: f["value"] for f in rung["figures"]}
    assert figures["connect_ms"] > 0 and figures["select_1_ms"] > 0


def test_load_of_a_file_of_another_schema_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"schema": "lagscope.probe/1"}')
    result = invoke("--load", str(path))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1


def test_narrow_console_encoding(tmp_path: Path) -> None:
    with waitress_server(hello) as (host, port):
        done = subprocess.run(
            [sys.executable, "-m", "lagscope", "diagnose", f"http://{host}:{port}/", "--quick"],
            capture_output=True,
            env={**os.environ, "PYTHONIOENCODING": "cp1252"},
            timeout=60,
            check=False,
        )
    # 0 or 1 (a loaded machine may see a finding); never the traceback of an encoding error.
    assert done.returncode in (0, 1), done.stderr
    assert b"Traceback" not in done.stderr
    assert b"requests in" in done.stdout


def test_the_report_schema_shares_the_probe_schemas_request_record() -> None:
    probe = json.loads(
        (
            Path(__file__).parents[2] / "src" / "lagscope" / "schemas" / "probe-2.schema.json"
        ).read_text()
    )
    mine = copy.deepcopy(SCHEMA["$defs"]["requests"])
    theirs = copy.deepcopy(probe["$defs"]["requests"])
    del mine["properties"]["values"]["properties"]["series"]
    del theirs["properties"]["values"]["properties"]["series"]
    assert mine == theirs
    for name in ("attempt", "metric", "metric_shape", "headers"):
        assert SCHEMA["$defs"][name] == probe["$defs"][name], name


def test_a_keyword_dsn_password_never_reaches_the_report() -> None:
    dsn = f"host=127.0.0.1 port={free_port()} user=app password=hunter2 dbname=items"
    with waitress_server(hello) as (host, port):
        result = invoke(f"http://{host}:{port}/", "--quick", "--database", dsn)
    assert result.exit_code == 4, result.output
    assert "hunter2" not in result.output

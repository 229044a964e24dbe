"""``python manage.py lagscope`` run as a user runs it: a small project on disk, a child
process, SQLite and a real PostgreSQL cluster."""

from __future__ import annotations

import dataclasses
import http.client
import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lagscope.dbcheck.measure import bounded_connect_timeout
from lagscope.dbcheck.model import AliasResult, AliasSettings, DbReport, Samples
from lagscope.dbcheck.render import render_json, render_text
from lagscope.dbcheck.rules import findings_for
from lagscope.diagnose.model import SEVERITIES
from lagscope.diagnose.rules import DB_KEEP_CONNECTIONS_FIX
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS
from lagscope.instrument.servertiming import parse_headers
from lagscope.serve.process import ServeProcess
from support.net import free_port
from support.pg import PgCluster

PASSWORD = "pw-Zq8-never-printed"

SETTINGS = """
import json, os
SECRET_KEY = "manage-lagscope-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["lagscope.django"]
MIDDLEWARE = [
    "lagscope.django.middleware.ServerTimingMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "proj_urls"
DATABASES = json.loads(os.environ["PROJ_DATABASES"])
"""

URLS = """
from django.db import connections
from django.http import HttpResponse
from django.urls import path

def view(request):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok")

urlpatterns = [path("", view)]
"""

MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, text in (
        ("proj_settings.py", SETTINGS),
        ("proj_urls.py", URLS),
        ("manage.py", MANAGE),
    ):
        (tmp_path / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def _env(databases: dict[str, Any]) -> dict[str, str]:
    import os

    env = {**os.environ, "PROJ_DATABASES": json.dumps(databases), "PYTHONUNBUFFERED": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "proj_settings"  # not the suite's own
    return env


def manage(
    project: Path, databases: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "lagscope", *args],
        cwd=project,
        env=_env(databases),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pg(cluster: PgCluster, **extra: Any) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": cluster.user,
        "PASSWORD": PASSWORD,
        "HOST": "127.0.0.1",
        "PORT": str(cluster.port),
        **extra,
    }


def _sqlite(project: Path) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(project / "db.sqlite3")}


@pytest.mark.postgres
def test_db_measures_every_alias_and_never_prints_the_password(
    project: Path, pg_cluster: PgCluster
) -> None:
    databases = {"default": _sqlite(project), "pg": _pg(pg_cluster, CONN_MAX_AGE=0)}
    text = manage(project, databases, "db", "--samples", "3", "--verbosity", "2")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "default: sqlite" in out and "pg: postgresql at 127.0.0.1:" in out
    assert out.count("connect   p50") == 2 and out.count("SELECT 1  p50") == 2
    assert (
        "[warning] db-connect-per-request (pg)" in out
        or "[info] db-connect-per-request (pg)" in out
    )
    # gssencmode is left at libpq's default, so the A/B ran.
    assert "gssencmode=disable" in out
    result = manage(project, databases, "db", "--samples", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "lagscope.db/1"
    pg = {a["settings"]["alias"]: a for a in report["aliases"]}["pg"]
    assert len(pg["connect"]["values_ms"]) == 3 and pg["connect"]["p50_ms"] > 0
    assert pg["connect_gss_disabled"] is not None  # gssencmode left at libpq's "prefer"
    assert pg["settings"]["gssencmode"] == "prefer"
    ids = {(f["finding"]["id"], f["alias"]) for f in report["findings"]}
    assert ("db-connect-per-request", "pg") in ids
    assert ("db-connect-per-request", "default") not in ids  # SQLite has no network connect
    for run in (text, result):
        assert PASSWORD not in run.stdout + run.stderr


@pytest.mark.postgres
def test_persistent_connections_with_gss_disabled_have_no_findings(
    project: Path, pg_cluster: PgCluster
) -> None:
    pg = _pg(
        pg_cluster, CONN_MAX_AGE=600, CONN_HEALTH_CHECKS=True, OPTIONS={"gssencmode": "disable"}
    )
    result = manage(project, {"default": pg}, "db", "--samples", "2")
    assert result.returncode == 0, result.stderr
    assert "CONN_MAX_AGE 600 s, no pool, CONN_HEALTH_CHECKS on" in result.stdout
    assert "with gssencmode=disable" not in result.stdout  # nothing to compare against
    # A slow connect could still be reported on a loaded machine; per-request cannot.
    assert "db-connect-per-request" not in result.stdout


def test_database_down_is_one_line_and_exit_4(project: Path) -> None:
    closed = free_port()
    down = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "app",
        "PASSWORD": PASSWORD,
        "HOST": "127.0.0.1",
        "PORT": str(closed),
        "OPTIONS": {"gssencmode": "disable"},
    }
    result = manage(project, {"default": down}, "db")
    assert result.returncode == 4
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    where = f"postgresql at 127.0.0.1:{closed}"
    assert lines[0].startswith(
        f"CommandError: lagscope: db: cannot connect to 'default' ({where}):"
    )
    assert PASSWORD not in result.stderr
    # With a reachable alias beside it, the report is printed, then the same one line.
    mixed = manage(project, {"default": _sqlite(project), "pg": down}, "db", "--samples", "1")
    assert mixed.returncode == 4
    assert "default: sqlite" in mixed.stdout
    assert len(mixed.stderr.splitlines()) == 1 and "'pg'" in mixed.stderr
    assert PASSWORD not in mixed.stdout + mixed.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("db", "--samples", "0"), "must be at least 1"),
        (("db", "--samples", "nan"), "needs an integer"),
        (("db", "--timeout", "99999999999"), "must be at most 600"),
        (("db", "--database", "nope"), "no DATABASES alias 'nope'"),
        (("nosuch",), "invalid choice"),
    ],
)
def test_bad_input_is_a_usage_error(project: Path, args: tuple[str, ...], needle: str) -> None:
    result = manage(project, {"default": _sqlite(project)}, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_fail_on_gates_on_severity(project: Path) -> None:
    ok = manage(
        project, {"default": _sqlite(project)}, "db", "--samples", "1", "--fail-on", "warning"
    )
    assert ok.returncode == 0, ok.stderr
    assert "findings: none" in ok.stdout
    quiet = manage(
        project, {"default": _sqlite(project)}, "db", "--samples", "1", "--verbosity", "0"
    )
    assert quiet.returncode == 0 and quiet.stdout == "findings: none\n"


# -- serve -----------------------------------------------------------------------------


def test_serve_help_lists_the_serve_flags(project: Path) -> None:
    result = manage(project, {"default": _sqlite(project)}, "serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "--threads" in result.stdout and "--prewarm" in result.stdout


def test_serve_refuses_another_settings_module(project: Path) -> None:
    result = manage(project, {"default": _sqlite(project)}, "serve", "--django-settings", "x")
    assert result.returncode == 2
    assert "--django-settings is this project's" in result.stderr


@pytest.mark.postgres
def test_serve_runs_this_project_on_the_tuned_stack(project: Path, pg_cluster: PgCluster) -> None:
    databases = {"default": _pg(pg_cluster, OPTIONS={"gssencmode": "disable"})}
    command = [sys.executable, "manage.py", "lagscope", "serve"]
    with ServeProcess(
        ["--port", "0", "--threads", "2"], env=_env(databases), cwd=str(project), command=command
    ) as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            seen = []
            for _ in range(3):
                conn.request("GET", "/")
                response = conn.getresponse()
                assert response.read() == b"ok"
                seen.append(
                    {
                        m.name: m
                        for m in parse_headers(response.headers.get_all("Server-Timing") or [])
                    }
                )
        finally:
            conn.close()
        code = served.stop()
    assert code == 0, served.output
    # Keep-alive and prewarmed database connections: no request paid a connect.
    assert [m["conn"].desc for m in seen] == ["new", "reused", "reused"]
    assert not any("dbconn" in m for m in seen)
    assert all(m["db"].desc == "1 query" for m in seen)


# -- the rules, pure ---------------------------------------------------------------------


def _result(
    p50_ms: float,
    *,
    conn_max_age: float | None = 0,
    pool: bool = False,
    host: str = "10.0.0.5",
    no_gss_ms: float | None = None,
    vendor: str = "postgresql",
) -> AliasResult:
    settings = AliasSettings(
        "default", vendor, host, "5432", "app", conn_max_age, False, pool, "prefer"
    )
    return AliasResult(
        settings,
        connect=Samples((p50_ms, p50_ms, p50_ms)),
        select1=Samples((0.1,)),
        connect_gss_disabled=Samples((no_gss_ms,) * 3) if no_gss_ms is not None else None,
    )


def _ids(results: tuple[AliasResult, ...]) -> set[tuple[str, str]]:
    return {(f.finding.id, f.finding.severity) for f in findings_for(results)}


@pytest.mark.parametrize(
    ("p50_ms", "expected"),
    [
        (5.0, {("db-connect-per-request", "warning")}),
        # Slow, but its cost is already counted in db-connect-per-request: info, as in diagnose.
        (
            DEFAULT_THRESHOLDS.db_connect_slow_ms + 10,
            {("db-connect-per-request", "warning"), ("db-connect-slow", "info")},
        ),
        (
            DEFAULT_THRESHOLDS.critical_ms + 11,
            {("db-connect-per-request", "critical"), ("db-connect-slow", "info")},
        ),
    ],
)
def test_rules_by_connect_time(p50_ms: float, expected: set[tuple[str, str]]) -> None:
    assert _ids((_result(p50_ms),)) == expected


def test_persistent_or_pooled_connections_only_report_a_slow_connect() -> None:
    assert findings_for((_result(5.0, conn_max_age=None),)) == ()
    assert findings_for((_result(5.0, pool=True),)) == ()
    assert findings_for((_result(0.5, vendor="sqlite"),)) == ()
    (slow,) = findings_for((_result(150.0, conn_max_age=600, no_gss_ms=3.2),))
    assert slow.alias == "default"
    assert slow.finding.id == "db-connect-slow" and slow.finding.severity == "critical"
    assert slow.finding.confirm == "python manage.py lagscope db"
    assert any("gssencmode" in fix for fix in slow.finding.fix)


def test_the_findings_are_diagnoses() -> None:
    # Same ids, severities and fix text as lagscope diagnose.
    (per_request,) = findings_for((_result(5.0),))
    assert per_request.finding.fix == DB_KEEP_CONNECTIONS_FIX
    assert per_request.finding.severity in SEVERITIES


# -- diagnose ----------------------------------------------------------------------------


def test_diagnose_help_lists_the_diagnose_flags(project: Path) -> None:
    result = manage(project, {"default": _sqlite(project)}, "diagnose", "--help")
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout and "--direct" in result.stdout


def test_diagnose_unknown_alias_is_a_usage_error(project: Path) -> None:
    result = manage(
        project, {"default": _sqlite(project)}, "diagnose", "http://127.0.0.1:9/", "--alias", "nope"
    )
    assert result.returncode == 2
    assert "no DATABASES alias 'nope'" in result.stderr


@pytest.mark.postgres
def test_diagnose_adds_the_database_rung_from_the_settings(
    project: Path, pg_cluster: PgCluster
) -> None:
    databases = {"default": _pg(pg_cluster, OPTIONS={"gssencmode": "disable"})}
    command = [sys.executable, "manage.py", "lagscope", "serve"]
    with ServeProcess(
        ["--port", "0", "--threads", "2"], env=_env(databases), cwd=str(project), command=command
    ) as served:
        url = f"http://127.0.0.1:{served.port}/"
        result = manage(project, databases, "diagnose", url, "--quick", "--json")
        sqlite = manage(
            project, {"default": _sqlite(project)}, "diagnose", url, "--quick", "--json"
        )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    rungs = {r["name"]: r for r in report["rungs"]}
    assert rungs["database"]["status"] != "skipped", rungs["database"]
    figures = {f["name"] for f in rungs["database"]["figures"]}
    assert any("connect" in name for name in figures), figures
    assert PASSWORD not in result.stdout + result.stderr
    # The report records the user's command line, not the DSN added from the settings.
    assert report["command"] == [
        "python",
        "manage.py",
        "lagscope",
        "diagnose",
        url,
        "--quick",
        "--json",
    ]
    # A project on SQLite gets the ladder without the database rung, and says why.
    assert sqlite.returncode in (0, 1), sqlite.stderr
    assert "the database rung needs PostgreSQL" in sqlite.stderr
    assert {r["name"]: r for r in json.loads(sqlite.stdout)["rungs"]}["database"][
        "status"
    ] == "skipped"


def test_a_cp1252_console_gets_escapes_not_a_traceback(project: Path) -> None:
    # A Windows pipe in cp1252 and a database path it cannot encode.
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(project / "db→.sqlite3")}
    }
    env = {**_env(databases), "PYTHONIOENCODING": "cp1252"}
    result = subprocess.run(
        [sys.executable, "manage.py", "lagscope", "db", "--samples", "1"],
        cwd=project,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode("cp1252", "replace")
    assert b"db\\u2192.sqlite3" in result.stdout
    assert b"Traceback" not in result.stderr


# -- saved reports -----------------------------------------------------------------------


def test_report_json_round_trips() -> None:
    results = (
        _result(150.0, conn_max_age=600, no_gss_ms=3.2),
        _result(5.0),
        dataclasses.replace(_result(1.0, vendor="sqlite"), connect=None, select1=None, error="x"),
    )
    report = DbReport(results, findings_for(results), 3)
    again = DbReport.from_json(json.loads(render_json(report)))
    assert again == report
    assert render_text(again) == render_text(report)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not json", "Expecting value"),
        ("[" * 100_000, "nested deeper"),
        ('{"schema": "lagscope.probe/1"}', "$.schema"),
        ('{"schema": "lagscope.db/1", "samples": 3, "aliases": "x", "findings": []}', "$.aliases"),
        ('{"schema": "lagscope.db/1", "samples": NaN, "aliases": [], "findings": []}', "NaN"),
    ],
)
def test_bad_saved_reports_are_one_line_usage_errors(project: Path, text: str, needle: str) -> None:
    saved = project / "saved.json"
    saved.write_text(text, encoding="utf-8")
    result = manage(project, {"default": _sqlite(project)}, "db", "--load", str(saved))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1 and needle in result.stderr
    assert "Traceback" not in result.stderr


def test_load_renders_what_json_saved(project: Path) -> None:
    databases = {"default": _sqlite(project)}
    saved = manage(project, databases, "db", "--samples", "2", "--json")
    assert saved.returncode == 0, saved.stderr
    path = project / "db.json"
    path.write_text(saved.stdout, encoding="utf-8")
    loaded = manage(project, databases, "db", "--load", str(path))
    assert loaded.returncode == 0, loaded.stderr
    report = DbReport.from_json(json.loads(saved.stdout))
    assert loaded.stdout == render_text(report)


SLOW_URLS = """
import time
from django.http import HttpResponse
from django.urls import path

def slow_helper():
    time.sleep(0.2)

def view(request):
    slow_helper()
    return HttpResponse("ok")

urlpatterns = [path("", view)]
"""


def test_diagnose_of_a_debug_project_names_the_slow_helper(project: Path) -> None:
    # DEBUG is what a development project runs with: profile mode needs nothing more.
    settings = (project / "proj_settings.py").read_text(encoding="utf-8")
    (project / "proj_settings.py").write_text(
        settings.replace("DEBUG = False", "DEBUG = True"), encoding="utf-8"
    )
    (project / "proj_urls.py").write_text(textwrap.dedent(SLOW_URLS), encoding="utf-8")
    databases = {"default": _sqlite(project)}
    command = [sys.executable, "manage.py", "lagscope", "serve"]
    with ServeProcess(
        ["--port", "0", "--threads", "2"], env=_env(databases), cwd=str(project), command=command
    ) as served:
        url = f"http://127.0.0.1:{served.port}/"
        result = manage(project, databases, "diagnose", url, "--quick", "--json")
    assert result.returncode == 1, result.stderr
    findings = {f["id"]: f for f in json.loads(result.stdout)["findings"]}
    top = findings["slow-app"]["profile"]["hotspots"][0]
    assert top["function"] == "slow_helper" and 150 <= top["ms"] <= 250, top
    assert top["file"] == "proj_urls.py"


def _silent_pg(port: int, **options: Any) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "app",
        "USER": "app",
        "PASSWORD": PASSWORD,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPTIONS": options,
    }


# connect_timeout values a project may have: libpq reads 0, nothing or a negative number as
# "wait forever"; a long one would outlast --timeout.
_PROJECT_TIMEOUTS: list[Any] = [0, "0", -5, 3600, "not a number", None]


def test_timeout_bounds_every_connect_whatever_options_say(project: Path) -> None:
    """A host that accepts TCP and never answers: each alias's connect ends within --timeout,
    whatever OPTIONS' connect_timeout is (an unbounded one used to hang the command)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes handshakes; nothing is ever answered
        port = listener.getsockname()[1]
        databases = {
            ("default" if i == 0 else f"a{i}"): _silent_pg(
                port, **({} if t is None else {"connect_timeout": t})
            )
            for i, t in enumerate(_PROJECT_TIMEOUTS)
        }
        start = time.monotonic()
        result = manage(project, databases, "db", "--timeout", "2", "--samples", "1")
        elapsed_s = time.monotonic() - start
    assert result.returncode == 4, result.stderr
    assert "cannot connect to 'default'" in result.stderr and "(and 5 more)" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and PASSWORD not in result.stderr
    # Six aliases at 2 s each, plus Django's start-up; unbounded, this never returned.
    assert elapsed_s < 6 * 2 + 45


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(0, 3), ("0", 3), (-1, 3), (None, 3), ("x", 3), (3600, 3), (2, 2), ("1", 1), (3, 3)],
)
def test_the_project_s_connect_timeout_is_kept_only_when_shorter(
    configured: object, expected: int
) -> None:
    assert bounded_connect_timeout(configured, 3) == expected


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is a POSIX signal")
def test_ctrl_c_during_a_connect_is_one_line_and_exit_130(project: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        databases = {"default": _silent_pg(port, connect_timeout=0)}
        child = subprocess.Popen(
            [sys.executable, "manage.py", "lagscope", "db", "--timeout", "60"],
            cwd=project,
            env=_env(databases),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        listener.settimeout(60)
        held, _ = listener.accept()  # readiness: the command is inside its connect
        with held:
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert err.splitlines() == ["CommandError: lagscope: interrupted"], err
    assert out == ""

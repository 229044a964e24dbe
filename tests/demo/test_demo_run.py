"""``lagscope demo`` end to end, as a user runs it: a subprocess on a throwaway PostgreSQL
cluster and on SQLite, checked against the fault proxies' ground-truth log and against
PostgreSQL's pg_stat_activity; Ctrl+C at each step leaves no process and no file; bad
input is one line.

Each run gets its own TMPDIR (world-traversable, so the cluster's unprivileged account can
reach it) and a marker in its environment: afterwards the TMPDIR must be empty and no
process may carry the marker.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lagscope.demo.model import DemoReport, VersionResult
from lagscope.demo.pgcluster import find_pg_bin
from lagscope.demo.render import load_json
from lagscope.inject.log import ConnectionRecord, record_from_json
from lagscope.stopping import interrupt_signal_names
from support.browser import have_browser
from support.chromium import CHROMIUM, open_page

TAX_MS = 200.0
MARK = "LAGSCOPE_DEMO_TEST_MARK"
HAS_DIAGNOSE = importlib.util.find_spec("lagscope.diagnose") is not None
needs_pg = pytest.mark.skipif(find_pg_bin() is None, reason="PostgreSQL server binaries missing")
needs_diagnose = pytest.mark.skipif(not HAS_DIAGNOSE, reason="lagscope.diagnose not installed")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    tmpdir: Path
    marker: str
    log: Path

    @property
    def report(self) -> DemoReport:
        return load_json(json.loads(self.stdout))

    def records(self, route: str) -> list[ConnectionRecord]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        return [r for r in map(record_from_json, lines) if r.route == route]


@pytest.fixture
def sandbox() -> Iterator[Path]:
    # Under /tmp and 0755: the cluster's account (postgres/nobody under root) must reach it.
    root = Path(tempfile.mkdtemp(prefix="lagscope-demo-test-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _env(tmpdir: Path, marker: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TMPDIR"] = str(tmpdir)
    env[MARK] = marker
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("LAGSCOPE_PG_BIN", None)
    env.update(extra)
    return env


def _argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "lagscope", "demo", *args]


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment carries the marker (children, servers, PostgreSQL)."""
    found = []
    needle = f"{MARK}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _assert_clean(tmpdir: Path, marker: str) -> None:
    left = sorted(p.name for p in tmpdir.iterdir() if p.name != "ground-truth.jsonl")
    assert left == [], f"left on disk: {left}"
    if Path("/proc/self/environ").exists():
        assert _processes_with(marker) == [], "processes left running"


def _run(sandbox: Path, *args: str, **env: str) -> Run:
    tmpdir = sandbox / "tmp"
    tmpdir.mkdir(exist_ok=True)
    tmpdir.chmod(0o755)
    log = sandbox / "truth.jsonl"
    marker = uuid.uuid4().hex
    proc = subprocess.run(
        _argv(*args, "--log", str(log)),
        env=_env(tmpdir, marker, **env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr, tmpdir, marker, log)
    assert "Traceback" not in proc.stderr, proc.stderr
    _assert_clean(tmpdir, marker)
    return run


def _window(records: list[ConnectionRecord], v: VersionResult) -> list[ConnectionRecord]:
    return [r for r in records if v.ready_at <= r.accepted_at <= v.visit_end_at]


def _check_against_ground_truth(run: Run) -> None:
    report = run.report
    for v in report.versions:
        http = _window(run.records(f"{v.name}-http"), v)
        # The browser-like visit opens 3 connections, each taxed exactly once.
        assert v.http_connections == len(http) == 3, (v.name, v.http_connections, len(http))
        assert v.http_taxed == 3
        for r in http:
            assert r.tax_applied_ms is not None
            # The proxy shares the demo's process with the diagnose threads (and the GIL),
            # so a loaded machine can add to the hold; never take from it.
            assert TAX_MS - 5 <= r.tax_applied_ms < TAX_MS + 250
        new_conn = [s for s in v.samples if s.new_connection]
        assert len(new_conn) == 3
        # A request on a new connection waited at least the tax it was charged.
        assert all(s.elapsed_ms >= TAX_MS - 5 for s in new_conn)
        assert all(s.status == 200 for s in v.samples)


@pytest.fixture(scope="module")
def pg_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries missing")
    root = Path(tempfile.mkdtemp(prefix="lagscope-demo-test-"))
    root.chmod(0o755)
    try:
        # The default mode (what the README runs): diagnose gets more samples, so its
        # verdicts hold on a loaded machine.
        yield _run(root, "--json", "--tax", str(TAX_MS))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@needs_pg
def test_pg_run_tells_the_story_in_order(pg_run: Run) -> None:
    assert pg_run.code == 0, pg_run.stderr
    report = pg_run.report
    assert report.database == "postgresql" and report.database_source == "throwaway cluster"
    before, tuned, ours = report.versions
    assert before.first10_total_ms > tuned.first10_total_ms > ours.first10_total_ms
    # The first request pays the browser->app tax and, on "before", the database tax too.
    assert before.first_request_ms >= 2 * TAX_MS - 5
    assert before.samples[0].db_connects == 1 and ours.samples[0].db_connects == 0
    assert before.warm_p50_ms >= TAX_MS - 5  # every request connects to the database
    assert ours.warm_p50_ms < TAX_MS  # below any request that paid a tax
    # One progress line per step, on stderr.
    steps = [line for line in pg_run.stderr.splitlines() if line.startswith("lagscope demo: ")]
    assert any("lagscope: stopping" in s for s in steps)


@needs_pg
def test_pg_run_agrees_with_the_proxy_log_and_pg_stat_activity(pg_run: Run) -> None:
    _check_against_ground_truth(pg_run)
    before, tuned, ours = pg_run.report.versions
    for v in (before, tuned, ours):
        db = _window(pg_run.records(f"{v.name}-db"), v)
        assert v.db_connects_after_start == len(db), v.name
        # Every database connect the proxy saw, the app reported in Server-Timing.
        assert v.db_connects_after_start == sum(s.db_connects for s in v.samples), v.name
    # CONN_MAX_AGE=0: one connect per request, none kept.
    assert before.db_connects_after_start == len(before.samples)
    assert before.pg_backends_after_start == 0
    # Persistent connections: each one opened during the visit is still open in PostgreSQL,
    # at most one per waitress thread.
    assert tuned.db_connects_after_start is not None
    assert tuned.pg_backends_after_start == tuned.db_connects_after_start
    assert 1 <= tuned.db_connects_after_start <= 4
    # lagscope serve opened its connections before it was ready.
    assert ours.db_connects_after_start == 0 == ours.pg_backends_after_start
    assert ours.pg_backends is not None and ours.pg_backends >= 1
    assert before.db_tax_paid_ms >= before.db_connects_after_start * (TAX_MS - 5)


@needs_pg
def test_pg_run_browser_loads_each_versions_pages(pg_run: Run) -> None:
    if not have_browser():
        assert any(n.startswith("no browser") for n in pg_run.report.notes)
        pytest.skip("no Chromium or no Playwright: the note is all there is")
    report = pg_run.report
    assert report.browser is not None and "chromium" in report.browser.lower()
    assert report.https  # on by default when the browser runs
    for v in report.versions:
        html, data = v.browser_page("/items/"), v.browser_page("/api/items/")
        assert html is not None and data is not None, v.name
        # The document and its 10 static files; the JSON page alone.
        assert (html.requests, data.requests) == (11, 1)
        assert data.connections == 1
        if v.name == "lagscope":
            # HTTP/2: one connection for the page and its files, one tax.
            assert (html.protocol, html.connections) == ("h2", 1), html
            assert html.cold_ms >= TAX_MS - 5 and html.reload_connections == 0
            continue
        assert html.protocol == "http/1.1" and 2 <= html.connections <= 6
        # The HTML page pays the tax in two rounds (the document's connection, then the
        # files' parallel ones), the JSON page once. Priced against requests that ran
        # alongside on reused connections, which a busy server slows too, so "clearly more
        # than one tax" is what holds on a loaded machine.
        assert html.setup_added_ms >= 1.5 * TAX_MS, (v.name, html)
        assert html.cold_ms >= 2 * TAX_MS and data.cold_ms >= TAX_MS
        assert html.reload_connections <= 1


@needs_pg
def test_pg_run_first_page_after_an_edit(pg_run: Run) -> None:
    before, tuned, ours = pg_run.report.versions
    for v in (before, tuned):
        assert v.edit is not None and v.edit.new_code, v.name
        # The restart closed the client's connection: a new one, taxed, and a database
        # connect (taxed) on the new process's first request.
        assert (v.edit.how, v.edit.new_connections) == ("restart", 1), v.name
        assert v.edit.first_ms >= 2 * TAX_MS - 5, v.name
    assert ours.edit is not None and ours.edit.new_code
    assert (ours.edit.how, ours.edit.new_connections) == ("reload", 0)
    assert ours.edit.first_ms < TAX_MS  # below anything that paid a tax


@needs_pg
@needs_diagnose
def test_pg_run_diagnose_names_the_ghosts_on_before(pg_run: Run) -> None:
    before = pg_run.report.versions[0]
    ids = {f.id for f in before.findings}
    assert {"connection-setup-tax", "db-connect-per-request"} <= ids, before.findings
    assert before.diagnose is not None


def test_sqlite_fallback_when_postgres_is_missing(sandbox: Path) -> None:
    empty = sandbox / "no-pg"
    empty.mkdir()
    run = _run(
        sandbox,
        "--quick",
        "--json",
        "--no-diagnose",
        "--tax",
        str(TAX_MS),
        LAGSCOPE_PG_BIN=str(empty),
    )
    assert run.code == 0, run.stderr
    report = run.report
    assert report.database == "sqlite"
    notes = [line for line in run.stderr.splitlines() if "database half" in line]
    assert len(notes) == 1 and "LAGSCOPE_PG_BIN" in notes[0]
    assert report.notes and "needs PostgreSQL" in report.notes[0]
    _check_against_ground_truth(run)
    for v in report.versions:
        assert v.db_connects_after_start is None and v.pg_backends is None
        assert run.records(f"{v.name}-db") == []
    # Without the database tax only the browser's new connections pay it: warm requests
    # on reused connections do not, whatever the version.
    for v in report.versions:
        assert v.warm_p50_ms < TAX_MS - 5, v.name  # below any request that paid a tax
        assert v.first10_total_ms >= 3 * (TAX_MS - 5), v.name


@needs_diagnose
def test_no_tax_gives_no_tax_finding(sandbox: Path) -> None:
    run = _run(sandbox, "--quick", "--json", "--database", "sqlite", "--tax", "0")
    assert run.code == 0, run.stderr
    for v in run.report.versions:
        assert v.diagnose is not None, v.diagnose_error
        assert "connection-setup-tax" not in {f.id for f in v.findings}, v.name
        assert v.http_taxed == 0


# -- Ctrl+C at each step ---------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
@pytest.mark.parametrize(
    ("step", "database"),
    [
        pytest.param("database: starting", None, marks=needs_pg, id="cluster"),
        pytest.param("before: starting", "sqlite", id="start"),
        pytest.param("before: visiting", None, marks=needs_pg, id="visit-pg"),
        pytest.param("hand-tuned: ready", "sqlite", id="ready"),
        pytest.param("before: diagnose", "sqlite", id="diagnose"),
        pytest.param("lagscope: stopping", "sqlite", id="stop"),
        pytest.param("editing each version", "sqlite", id="edit"),
        pytest.param(
            "before: loading both pages",
            "sqlite",
            marks=pytest.mark.skipif(not have_browser(), reason="no browser"),
            id="browser",
        ),
    ],
)
def test_ctrl_c_at_each_step_leaves_nothing(sandbox: Path, step: str, database: str | None) -> None:
    _stop_at(sandbox, step, database, "SIGINT", group=True)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals; Windows: test_stopping")
@pytest.mark.parametrize(
    ("step", "database"),
    [
        pytest.param("before: visiting", None, marks=needs_pg, id="visit-pg"),
        pytest.param("before: visiting", "sqlite", id="visit"),
        pytest.param("hand-tuned: ready", "sqlite", id="ready"),
        # Chromium and its driver stopped by the same signal (group) before they clean up:
        # their temporary folders go with the browser's directory.
        pytest.param(
            "lagscope: loading both pages",
            "sqlite",
            marks=pytest.mark.skipif(not have_browser(), reason="no browser"),
            id="browser",
        ),
    ],
)
@pytest.mark.parametrize("name", [n for n in interrupt_signal_names() if n != "SIGINT"])
@pytest.mark.parametrize("group", [False, True], ids=["demo", "group"])
def test_every_stop_signal_cleans_up_as_ctrl_c_does(
    sandbox: Path, step: str, database: str | None, name: str, group: bool
) -> None:
    """SIGTERM (kill, a CI timeout) and SIGHUP (the terminal closed), to the demo alone or
    to its group: exit 130, one line, nothing left (cluster, app servers, temp dirs)."""
    _stop_at(sandbox, step, database, name, group=group)


def _stop_at(sandbox: Path, step: str, database: str | None, name: str, group: bool) -> None:
    tmpdir = sandbox / "tmp"
    tmpdir.mkdir()
    tmpdir.chmod(0o755)
    marker = uuid.uuid4().hex
    args = ["--quick", "--tax", "100"]
    if "diagnose" not in step:
        args.append("--no-diagnose")
    if "editing" in step:
        args.append("--edit")  # --quick leaves the edit row out otherwise
    if database:
        args += ["--database", database]
    # Its own process group, so the SIGINT reaches the demo and its children together, as
    # a terminal's Ctrl+C does.
    proc = subprocess.Popen(
        _argv(*args),
        env=_env(tmpdir, marker),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if f"lagscope demo: {step}" in line:
                if sys.platform != "win32":  # skipped there: no process groups
                    signum = getattr(signal, name)
                    if group:
                        os.killpg(proc.pid, signum)
                    else:
                        os.kill(proc.pid, signum)
                break
        rest = proc.stderr.read()
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert any(step in line for line in seen), "".join(seen)
    assert code == 130, "".join(seen) + rest
    assert "Traceback" not in rest, rest
    assert rest.strip().splitlines()[-1] == "lagscope: interrupted"
    _assert_clean(tmpdir, marker)


# -- bad input -------------------------------------------------------------------------------


def _one_line(sandbox: Path, *args: str, **env: str) -> tuple[int, str]:
    tmpdir = sandbox / "tmp"
    tmpdir.mkdir(exist_ok=True)
    proc = subprocess.run(
        _argv(*args),
        env=_env(tmpdir, uuid.uuid4().hex, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("lagscope: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""
    return proc.returncode, errors[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_dsn_is_one_line_without_the_password(sandbox: Path) -> None:
    port = _closed_port()
    code, line = _one_line(
        sandbox, "--database", f"postgresql://app:hunter2@127.0.0.1:{port}/items"
    )
    assert code == 4
    # The connection parameters as libpq read them, the password masked.
    assert line.startswith("lagscope: database: cannot connect to ")
    assert "password=***" in line and f"port={port}" in line
    assert "hunter2" not in line
    code, line = _one_line(sandbox, "--database", "mysql://app:hunter2@127.0.0.1/items")
    assert code == 2 and "hunter2" not in line and "postgresql://" in line
    code, line = _one_line(sandbox, "--database", "postgresql://app:hunter2@127.0.0.1:99999/x")
    assert code == 2 and "hunter2" not in line


def test_port_in_use_is_one_line(sandbox: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        if port > 65532:
            pytest.skip("ephemeral port at the top of the range")
        code, line = _one_line(sandbox, "--port-base", str(port), "--database", "sqlite")
    assert code == 8
    assert line.startswith("lagscope: listen: ") and f"127.0.0.1:{port}" in line


def test_bad_numbers_are_usage_errors(sandbox: Path) -> None:
    for args in (
        ["--tax", "nan"],
        ["--tax", "-5"],
        ["--tax", "99999999999"],
        ["--port-base", "80"],
    ):
        code, line = _one_line(sandbox, *args)
        assert code == 2, (args, line)


def test_load_renders_a_saved_run_again(pg_run: Run, tmp_path: Path) -> None:
    saved = tmp_path / "demo.json"
    saved.write_text(pg_run.stdout, encoding="utf-8")
    proc = subprocess.run(
        _argv("--load", str(saved)), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "findings each version still has" in proc.stdout
    assert json.loads(pg_run.stdout)["schema"] == "lagscope.demo/1"
    # What PowerShell 5.1's `lagscope demo --json > demo.json` writes: UTF-16, with a BOM.
    saved.write_text(pg_run.stdout, encoding="utf-16")
    again = subprocess.run(
        _argv("--load", str(saved)), capture_output=True, text=True, timeout=60, check=False
    )
    assert (again.returncode, again.stdout) == (0, proc.stdout), again.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_keep_leaves_the_versions_serving_until_ctrl_c(sandbox: Path) -> None:
    tmpdir = sandbox / "tmp"
    tmpdir.mkdir()
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        _argv("--keep", "--quick", "--no-diagnose", "--database", "sqlite", "--tax", "50"),
        env=_env(tmpdir, marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    urls: list[str] = []
    ca: Path | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("  ") and "/items/" in line:
                urls.append(line.split()[1])
            if line.startswith("this run's CA"):
                ca = Path(line.rsplit(": ", 1)[1].strip())
            if line.startswith("running;"):
                break
        assert len(urls) == 3, urls
        # With the browser, "lagscope" is served over HTTPS by default, with the run's own
        # CA (printed, so a client can trust it).
        schemes = [urlsplit(u).scheme for u in urls]
        assert schemes == ["http", "http", "https" if have_browser() else "http"], urls
        # Still serving after the report: each version answers through its tax proxy.
        for url in urls:
            parts = urlsplit(url)
            conn: http.client.HTTPConnection
            if parts.scheme == "https":
                assert ca is not None and ca.is_file()
                tls = ssl.create_default_context(cafile=str(ca))
                conn = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=30, context=tls
                )
            else:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            try:
                conn.request("GET", "/api/items/")
                resp = conn.getresponse()
                assert resp.status == 200 and json.loads(resp.read())["count"] == 500
            finally:
                conn.close()
        if sys.platform != "win32":
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    _assert_clean(tmpdir, marker)


def test_html_page_holds_each_version_and_loads_nothing(pg_run: Run, tmp_path: Path) -> None:
    saved = tmp_path / "demo.json"
    saved.write_text(pg_run.stdout, encoding="utf-8")
    page_path = tmp_path / "demo.html"
    proc = subprocess.run(
        _argv("--load", str(saved), "--html", str(page_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = page_path.read_text(encoding="utf-8")
    assert "first 10 requests, total" in text
    assert "<script" not in text
    assert text.index('<svg class="compare"') < text.index("<table>")
    report = pg_run.report
    frames = text.count("<iframe ")
    assert frames == sum(1 for v in report.versions if v.diagnose is not None)
    if CHROMIUM is None:
        return
    with open_page(page_path) as page:
        assert page.requested_urls() == [page_path.resolve().as_uri()]
        assert page.console_errors() == []
        body = page.evaluate("document.body.innerText")
        assert "hand-tuned" in body and "lagscope" in body
        assert page.evaluate("document.querySelectorAll('iframe').length") == frames


@pytest.mark.nginx
@pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").is_file(),
    reason="nginx not installed",
)
def test_nginx_before_opens_an_app_connection_per_request(sandbox: Path) -> None:
    run = _run(
        sandbox,
        "--nginx",
        "--quick",
        "--json",
        "--no-diagnose",
        "--database",
        "sqlite",
        "--tax",
        str(TAX_MS),
    )
    assert run.code == 0, run.stderr
    before, tuned, ours = run.report.versions
    for v in (before, tuned, ours):
        upstream = _window(run.records(f"{v.name}-upstream"), v)
        assert v.upstream_connections == len(upstream), v.name
        assert all(s.status == 200 for s in v.samples)
    # The tutorial config: nginx opens a new connection to the app for every request, and
    # every one of them pays the tax.
    assert before.upstream_connections == len(before.samples)
    assert before.warm_p50_ms >= TAX_MS - 5
    # lagscope nginx-config: the upstream pool keeps them (at most one per parallel request).
    for v in (tuned, ours):
        assert v.upstream_connections is not None and v.upstream_connections <= 3, v.name
        assert v.warm_p50_ms < TAX_MS - 5, v.name  # below any request that paid a tax
    if have_browser():
        # nginx-config --https in front of lagscope: TLS with HTTP/2 to the browser, one
        # connection for the page and its files; plain keep-alive to the app behind it.
        assert run.report.https and ours.url.startswith("https://")
        page = ours.browser_page("/items/")
        assert page is not None and (page.protocol, page.connections) == ("h2", 1), page
    assert (
        "nginx->app connections"
        in subprocess.run(
            _argv("--load", str(_saved(run, sandbox))), capture_output=True, text=True, check=True
        ).stdout
    )


def _saved(run: Run, sandbox: Path) -> Path:
    path = sandbox / "saved.json"
    path.write_text(run.stdout, encoding="utf-8")
    return path


def test_nginx_missing_is_one_line(sandbox: Path) -> None:
    code, line = _one_line(
        sandbox, "--nginx", "--nginx-bin", str(sandbox / "no-nginx"), "--database", "sqlite"
    )
    assert code == 8
    assert line.startswith("lagscope: nginx: nginx not found at ")

"""``lagscope serve --demo`` for real: a subprocess on SQLite in a fresh data dir, driven by
plain keep-alive clients. Also idle/slow clients, the connection limit, module:app,
graceful shutdown and granian."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lagscope.errors import ExitCode
from lagscope.serve import ServeProcess, serve_command
from serve.clients import KeepAliveClient, hammer
from support.net import free_port

HERE = Path(__file__).parent


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LAGSCOPE_DATA_DIR"] = str(data_dir)
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("demo-data") / "nested"  # must be created
    with ServeProcess(["--demo", "--port", "0"], env=_env(data_dir)) as proc:
        proc.data_dir = data_dir  # type: ignore[attr-defined]
        yield proc


def test_first_run_creates_seeds_and_listens_dual_stack(demo: ServeProcess) -> None:
    assert "created and seeded 500 items" in demo.output
    assert (demo.data_dir / "demo.sqlite3").is_file()  # type: ignore[attr-defined]
    assert "prewarmed default: persistent, one connection in each of 2 worker threads" in (
        demo.output
    )
    assert demo.urls == [f"http://127.0.0.1:{demo.port}", f"http://[::1]:{demo.port}"]
    for host in ("127.0.0.1", "::1"):
        client = KeepAliveClient(host, demo.port)
        data = client.json("/api/items/")
        client.close()
        assert data["count"] == 500
        assert len(data["items"]) == 500


def test_the_html_page_loads_its_static_files_like_a_django_page(demo: ServeProcess) -> None:
    """3 stylesheets, 3 scripts and 4 images through staticfiles + WhiteNoise, each on the
    same kept-alive connection, with Content-Length and a cache lifetime."""
    client = KeepAliveClient("127.0.0.1", demo.port)
    try:
        page = client.get("/items/", keep_body=True).body.decode()
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
        kinds = [a.rsplit(".", 1)[-1] for a in assets]
        assert (kinds.count("css"), kinds.count("js"), kinds.count("svg")) == (3, 3, 4)
        results = [client.get(a, keep_body=True) for a in assets]
    finally:
        client.close()
    assert client.connects == 1
    for r in results:
        assert r.status == 200, r.path
        assert r.content_length is not None and int(r.content_length) == len(r.body) > 0
    missing = KeepAliveClient("127.0.0.1", demo.port)
    try:
        assert missing.get("/static/refapp/css/nope.css").status == 404
    finally:
        missing.close()


def test_pages_keep_alive_and_never_connect_to_the_database(demo: ServeProcess) -> None:
    client = KeepAliveClient("127.0.0.1", demo.port)
    try:
        html = client.get("/items/", keep_body=True)
        for path in ["/api/items/", "/items/", "/no-such-page/"] * 4:
            client.get(path)
    finally:
        client.close()
    assert html.status == 200
    assert html.body.count(b"<tr><td>LS-") == 500
    assert b"Nuts &amp; Bolts" in html.body
    assert client.connects == 1  # every response sized, so one TCP connection for all 13
    assert all(r.content_length is not None for r in client.results)
    assert [r.status for r in client.results[1:4]] == [200, 200, 404]
    # The lagscope middleware is installed and reports one query per page, and no
    # request paid a database connect (persistent connections were prewarmed per thread).
    assert all("total" in r.metrics for r in client.results)
    assert not any("dbconn" in r.metrics for r in client.results)


def _idle_and_slow(port: int, idle: int, slow: int) -> list[socket.socket]:
    socks = []
    for i in range(idle + slow):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        if i < idle:
            s.sendall(b"GET /no-such-page/ HTTP/1.1\r\nHost: t\r\n\r\n")
        else:
            s.sendall(b"GET /api/items/ HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # never finished
    for s in socks[:idle]:
        assert s.recv(65536).startswith(b"HTTP/1.1 404")  # answered, connection kept open
    return socks


def test_idle_and_slow_clients_do_not_starve_a_normal_client(demo: ServeProcess) -> None:
    socks = _idle_and_slow(demo.port, idle=200, slow=20)
    try:
        client = KeepAliveClient("127.0.0.1", demo.port)
        timings = []
        for _ in range(5):
            r = client.get("/api/items/")
            assert r.status == 200
            timings.append(r.ended_s - r.started_s)
        client.close()
    finally:
        for s in socks:
            s.close()
    # Documented bound (docs/serve.md): below connection_limit, idle and slow-header
    # clients cost a normal client nothing but a select() slot; 2 s is ~100x the usual.
    assert max(timings) < 2.0, timings


def test_past_the_connection_limit_new_clients_wait(tmp_path: Path) -> None:
    # The negative control for the bound above: with --connection-limit 30, 40 idle
    # clients hold every slot and a new client waits in the backlog.
    args = ["--demo", "--port", "0", "--host", "127.0.0.1", "--connection-limit", "30"]
    with ServeProcess(args, env=_env(tmp_path)) as proc:
        socks = _idle_and_slow(proc.port, idle=26, slow=14)
        try:
            late = KeepAliveClient("127.0.0.1", proc.port, timeout_s=1.0)
            r = late.get("/api/items/")
            late.close()
        finally:
            for s in socks:
                s.close()
        assert r.status == 0
        assert "timed out" in r.error


def test_concurrent_keep_alive_load_has_no_errors(demo: ServeProcess) -> None:
    pool = hammer("127.0.0.1", demo.port, clients=6, duration_s=3.0)
    results = [r for c in pool for r in c.results]
    assert len(results) > 20
    assert {r.status for r in results} == {200}
    assert all(c.connects == 1 for c in pool)


def test_second_run_reuses_the_database(demo: ServeProcess) -> None:
    data_dir = demo.data_dir  # type: ignore[attr-defined]
    with ServeProcess(["--demo", "--port", "0"], env=_env(data_dir)) as again:
        assert "created and seeded" not in again.output
        client = KeepAliveClient("127.0.0.1", again.port)
        try:
            assert client.json("/api/items/")["count"] == 500
        finally:
            client.close()


class SlowRequest:
    """``GET /slow?ms=N`` on its own connection in a thread; ``wait_in_flight`` returns once
    the app printed that it started (its readiness line)."""

    def __init__(self, proc: ServeProcess, ms: int) -> None:
        self.proc = proc
        self.result: tuple[int, bytes, str | None] | str | None = None
        self.thread = threading.Thread(target=self._run, args=(ms,))
        self.thread.start()

    def _run(self, ms: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.proc.port, timeout=30)
        try:
            conn.request("GET", f"/slow?ms={ms}")
            resp = conn.getresponse()
            self.result = (resp.status, resp.read(), resp.getheader("Content-Length"))
        except (OSError, http.client.HTTPException) as exc:
            self.result = type(exc).__name__
        finally:
            conn.close()

    def wait_in_flight(self) -> None:
        _wait_for_line(self.proc, "slow request started")

    def join(self) -> None:
        self.thread.join(30)


def _wait_for_line(proc: ServeProcess, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in proc.output and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the process's own output line
    assert text in proc.output


def _wsgi_app(tmp_path: Path, *extra: str) -> ServeProcess:
    # module:app is found in the current directory, as with gunicorn / waitress-serve.
    args = ["wsgi_apps:app", "--port", "0", "--host", "127.0.0.1", *extra]
    return ServeProcess(args, env=_env(tmp_path), cwd=str(HERE)).start()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_graceful_shutdown_finishes_the_request_in_flight(tmp_path: Path, name: str) -> None:
    """SIGTERM, and SIGHUP (the terminal closed), drain as Ctrl+C does."""
    proc = _wsgi_app(tmp_path)
    try:
        idle = KeepAliveClient("127.0.0.1", proc.port)
        assert idle.get("/").status == 200  # an idle keep-alive connection at the stop
        slow = SlowRequest(proc, 1500)
        slow.wait_in_flight()
        proc.signal(signal.Signals[name])
        code = proc.wait(30)
        slow.join()
        assert idle.get("/").status == 0  # closed at the stop: no new request may start
        idle.close()
    finally:
        proc.stop()
    assert code == 0
    assert slow.result == (200, b"hello world", "11")  # finished, and sized by the wrapper
    assert "stopped (1 request(s) were in flight, all finished)" in proc.output


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_a_request_longer_than_the_shutdown_timeout_is_reported_abandoned(
    tmp_path: Path,
) -> None:
    proc = _wsgi_app(tmp_path, "--shutdown-timeout", "1")
    try:
        slow = SlowRequest(proc, 8000)
        slow.wait_in_flight()
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        code = proc.wait(30)
        stopped_s = time.monotonic() - signalled
        slow.join()
    finally:
        proc.stop()
    assert code == 0
    assert slow.result == "RemoteDisconnected"  # closed without a response
    assert (
        "stopped (1 request(s) were in flight: 0 finished, 1 abandoned after "
        "--shutdown-timeout 1 s" in proc.output
    )
    assert "all finished" not in proc.output
    assert stopped_s < 4.0  # the timeout plus exit, not the 8 s request


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is TerminateProcess on Windows")
def test_a_duplicate_signal_is_the_same_stop_and_a_second_one_is_immediate(
    tmp_path: Path,
) -> None:
    proc = _wsgi_app(tmp_path)
    try:
        slow = SlowRequest(proc, 1500)
        slow.wait_in_flight()
        # A group SIGTERM under `uv run` arrives twice (direct and forwarded). Send the
        # copy once the first was handled: two pending SIGTERMs would merge into one.
        proc.signal(signal.SIGTERM)
        _wait_for_line(proc, "finishing in-flight requests")
        proc.signal(signal.SIGTERM)
        code = proc.wait(30)
        slow.join()
    finally:
        proc.stop()
    assert code == 0
    assert slow.result == (200, b"hello world", "11")
    assert "SIGTERM again within 1 s, taken as the same stop" in proc.output

    proc = _wsgi_app(tmp_path)
    try:
        slow = SlowRequest(proc, 8000)
        slow.wait_in_flight()
        proc.signal(signal.SIGTERM)
        _wait_for_line(proc, "finishing in-flight requests")
        signalled = time.monotonic()
        proc.signal(signal.SIGINT)  # a different signal: not a duplicate
        code = proc.wait(30)
        stopped_s = time.monotonic() - signalled
        slow.join()
    finally:
        proc.stop()
    assert code == ExitCode.INTERRUPTED
    assert "second signal, stopped without waiting (1 request(s) abandoned)" in proc.output
    assert slow.result == "RemoteDisconnected"
    assert stopped_s < 2.0  # at once, not after the 8 s request or a thread-join timeout


# Serves wsgi_apps:app through lagscope.serve.run with a stop-signal set given on the
# command line, the way the Windows set (SIGINT, SIGBREAK) is passed there.
_RUN_WITH_SIGNALS = """
import signal, sys
from lagscope.serve import AppSpec, Host, resolve, run
config = resolve({"port": 0, "host": "127.0.0.1"}, Host.current())
signals = tuple(getattr(signal, name) for name in sys.argv[1:])
sys.exit(run(AppSpec("wsgi", "wsgi_apps:app"), config, stop_signals=signals))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGUSR1 stands in for SIGBREAK")
def test_the_windows_signal_set_stops_gracefully_with_sigbreak_stood_in_by_sigusr1(
    tmp_path: Path,
) -> None:
    # On Windows the set is (SIGINT, SIGBREAK) and SIGTERM is never delivered; here SIGUSR1
    # plays SIGBREAK, the signal ServeProcess.stop() sends there as CTRL_BREAK_EVENT.
    command = [sys.executable, "-c", _RUN_WITH_SIGNALS]
    proc = ServeProcess(
        ["SIGINT", "SIGUSR1"], env=_env(tmp_path), cwd=str(HERE), command=command
    ).start()
    try:
        slow = SlowRequest(proc, 1500)
        slow.wait_in_flight()
        proc.signal(signal.Signals["SIGUSR1"])  # by name: the module has none on Windows
        code = proc.wait(30)
        slow.join()
    finally:
        proc.stop()
    assert code == 0
    assert "SIGUSR1, finishing in-flight requests" in proc.output
    assert slow.result == (200, b"hello world", "11")
    assert "stopped (1 request(s) were in flight, all finished)" in proc.output


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_signal_outside_the_set_is_not_a_graceful_stop(tmp_path: Path) -> None:
    # The negative control: with SIGTERM left out of the set (as on Windows), SIGTERM keeps
    # its default action and kills the process without a drain.
    command = [sys.executable, "-c", _RUN_WITH_SIGNALS]
    proc = ServeProcess(
        ["SIGINT", "SIGUSR1"], env=_env(tmp_path), cwd=str(HERE), command=command
    ).start()
    try:
        proc.signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        proc.stop()
    assert code == -signal.SIGTERM
    assert "finishing in-flight requests" not in proc.output


def test_a_database_that_accepts_and_never_answers_fails_start_up_in_bounded_time(
    tmp_path: Path,
) -> None:
    # A listening socket that never accepts: the kernel completes the TCP handshake, and
    # the PostgreSQL start-up packet is never answered.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        res = subprocess.run(
            serve_command(
                [
                    "--demo",
                    "--database",
                    f"postgresql://u@127.0.0.1:{port}/x",
                    "--prewarm-timeout",
                    "2",
                ]
            ),
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed_s = time.monotonic() - started
    assert res.returncode == ExitCode.CONNECT, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"lagscope: database: PostgreSQL 127.0.0.1:{port}/x: ")
    assert "timeout" in lines[0]
    assert elapsed_s < 15  # connect_timeout 2 s (+ start-up), not psycopg's 130 s


@pytest.mark.skipif(importlib.util.find_spec("granian") is None, reason="granian not installed")
def test_granian_serves_the_same_app(demo: ServeProcess) -> None:
    env = _env(demo.data_dir)  # type: ignore[attr-defined]
    with ServeProcess(["--demo", "--server", "granian", "--port", "0"], env=env) as proc:
        assert proc.url.startswith("http://127.0.0.1:")
        client = KeepAliveClient("127.0.0.1", proc.port)
        try:
            first = client.get("/api/items/", keep_body=True)
            assert first.status == 200, (first, proc.output)
            assert json.loads(first.body)["count"] == 500
            html = client.get("/items/", keep_body=True)
        finally:
            client.close()
        assert html.body.count(b"<tr><td>LS-") == 500
        assert client.connects == 1


@pytest.mark.skipif(importlib.util.find_spec("granian") is None, reason="granian not installed")
@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX")
def test_granian_stops_on_sighup_as_on_sigterm(demo: ServeProcess) -> None:
    """A closed terminal (SIGHUP) stops serve on granian too, workers and all: granian's
    own meaning of SIGHUP, respawning its workers, kept it serving, and a respawn that a
    stop then interrupted left a worker nobody stopped."""
    env = _env(demo.data_dir)  # type: ignore[attr-defined]
    with ServeProcess(
        ["--demo", "--server", "granian", "--port", "0", "--shutdown-timeout", "1"], env=env
    ) as proc:
        if sys.platform != "win32":  # skipped there; mypy checks each platform's branch
            proc.signal(signal.SIGHUP)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still serving 30 s after SIGHUP:\n{proc.output}")
        assert code == 0, proc.output
        assert "Respawning" not in proc.output
        # Nothing listens any more (no worker outlived its master).
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proc.port), timeout=5).close()


def test_django_settings_mode_serves_the_same_project(demo: ServeProcess) -> None:
    env = _env(demo.data_dir)  # type: ignore[attr-defined]
    args = ["--django-settings", "lagscope.refapp.settings", "--port", "0", "--host", "127.0.0.1"]
    with ServeProcess(args, env=env) as proc:
        assert "Django project lagscope.refapp.settings" in proc.output
        assert "prewarmed default: persistent" in proc.output
        client = KeepAliveClient("127.0.0.1", proc.port)
        try:
            assert client.json("/api/items/")["count"] == 500
        finally:
            client.close()


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    res = subprocess.run(
        serve_command(["--demo", "--database", f"postgresql://u@127.0.0.1:{port}/x"]),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == ExitCode.CONNECT
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("lagscope: database: ")
    assert str(port) in lines[0]
    assert time.monotonic() - started < 30  # fails fast, not after a pool timeout


_needs_granian = pytest.mark.skipif(
    importlib.util.find_spec("granian") is None, reason="granian not installed"
)


# POSIX only (getattr: Windows' socket module has none).
_SO_REUSEPORT: int | None = getattr(socket, "SO_REUSEPORT", None)
_reuse_port = pytest.mark.skipif(_SO_REUSEPORT is None, reason="no SO_REUSEPORT")


# granian binds with SO_REUSEPORT: without serve's own check it failed with an internal
# error next to a plain listener, and started and shared the connections next to a listener
# that sets SO_REUSEPORT too (another granian).
@pytest.mark.parametrize(
    ("server_args", "reuse_port"),
    [
        pytest.param([], False, id="waitress"),
        pytest.param(["--server", "granian"], False, id="granian", marks=_needs_granian),
        pytest.param(
            ["--server", "granian"],
            True,
            id="granian-reuseport",
            marks=[_needs_granian, _reuse_port],
        ),
        pytest.param(["--https"], True, id="https-reuseport", marks=[_needs_granian, _reuse_port]),
    ],
)
def test_port_in_use_is_a_one_line_environment_error(
    tmp_path: Path, server_args: list[str], reuse_port: bool
) -> None:
    with socket.socket() as taken:
        if reuse_port:
            assert _SO_REUSEPORT is not None
            taken.setsockopt(socket.SOL_SOCKET, _SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run(
            serve_command(["--demo", "--host", "127.0.0.1", "--port", str(port), *server_args]),
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == ExitCode.ENVIRONMENT, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"lagscope: listen: cannot listen on 127.0.0.1 port {port}: ")


def test_missing_django_settings_is_a_one_line_usage_error(tmp_path: Path) -> None:
    res = subprocess.run(
        serve_command(["--django-settings", "no_such_pkg_xyz.settings"]),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == ExitCode.USAGE
    assert res.stderr.strip().splitlines() == [
        "lagscope: config: cannot import Django settings 'no_such_pkg_xyz.settings': "
        "No module named 'no_such_pkg_xyz'"
    ]

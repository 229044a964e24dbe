"""``lagscope serve --workers N`` for real: subprocesses sharing one listening socket, a
killed worker restarted, a graceful stop of all, the spawn path's socket handoff, and the
trusted-proxy rule."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lagscope.serve import ServeProcess
from lagscope.serve.workers import default_start_method, restart_delay_s

HERE = Path(__file__).parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals to children")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LAGSCOPE_DATA_DIR"] = str(tmp_path)
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    return env


def _workers(tmp_path: Path, *extra: str) -> ServeProcess:
    args = ["wsgi_apps:app", "--port", "0", "--host", "127.0.0.1", "--workers", "2", *extra]
    return ServeProcess(args, env=_env(tmp_path), cwd=str(HERE)).start()


def _worker_pids(proc: ServeProcess) -> list[int]:
    pids = []
    for line in proc.lines:
        if line.startswith("lagscope serve: worker ") and "prewarmed" in line:
            pids.append(int(line.split("(pid ")[1].split(")")[0]))
    return pids


def _wait_for_line(proc: ServeProcess, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in proc.output and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the process's own output line
    assert text in proc.output, proc.output


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _split_of_keep_alive_connections(port: int, count: int) -> Counter[int]:
    """Open ``count`` keep-alive connections one after another (all kept open), ask each
    which worker serves it: the workers' own answer, not an inference."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(count)]
    pids: Counter[int] = Counter()
    try:
        for conn in conns:
            conn.request("GET", "/pid")
            resp = conn.getresponse()
            pids[int(resp.read())] += 1
            assert not resp.will_close
        # Every connection is still served by the same worker on its next request.
        for conn in conns:
            conn.request("GET", "/pid")
            pids[int(conn.getresponse().read())] += 1
    finally:
        for conn in conns:
            conn.close()
    return pids


def test_restart_backoff_is_bounded() -> None:
    assert [restart_delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay_s(50) == 30.0
    assert default_start_method("win32") == "spawn"
    assert default_start_method("linux") == "fork"


def test_two_workers_report_ready_share_the_port_and_survive_a_killed_worker(
    tmp_path: Path,
) -> None:
    proc = _workers(tmp_path)
    try:
        pids = _worker_pids(proc)
        assert len(pids) == 2  # both prewarmed before the readiness line
        assert "2 workers x 2 threads" in proc.output
        # Every request on a new connection is answered by one of the two workers.
        served_by = {int(_get(proc.port, "/pid")[1]) for _ in range(30)}
        assert served_by <= set(pids)
        os.kill(pids[0], signal.Signals["SIGKILL"])  # by name: not in the module on Windows
        _wait_for_line(proc, "worker 0 (pid")
        _wait_for_line(proc, "exited with code -9")
        # The other worker answers while worker 0 is down, and after it is back.
        statuses = [_get(proc.port, "/")[0] for _ in range(10)]
        _wait_for_line(proc, "worker 0 ready again")
        statuses += [_get(proc.port, "/")[0] for _ in range(10)]
        assert statuses == [200] * 20
        new_pid = int(proc.output.split("worker 0 ready again (pid ")[1].split(")")[0])
        assert new_pid not in pids
        os.kill(new_pid, 0)  # alive
    finally:
        code = proc.stop()
    assert code == 0
    assert "restarting in 0.5 s" in proc.output


def test_keep_alive_connections_are_spread_evenly_over_the_workers(tmp_path: Path) -> None:
    proc = _workers(tmp_path)
    try:
        pids = _worker_pids(proc)
        split = _split_of_keep_alive_connections(proc.port, 8)
        # After they close, the next 8 spread over both workers again (counts went back
        # down; a worker may not have seen its closes yet, so within one connection).
        again = _split_of_keep_alive_connections(proc.port, 8)
    finally:
        code = proc.stop()
    assert code == 0
    assert split == {pids[0]: 8, pids[1]: 8}, split  # 4 connections x 2 requests each
    assert set(again) == set(pids), again
    assert all(6 <= requests <= 10 for requests in again.values()), again


def test_graceful_stop_of_all_workers_with_requests_in_flight(tmp_path: Path) -> None:
    # 3 threads each: whichever way the kernel spreads the 3 requests, all run at once.
    proc = _workers(tmp_path, "--threads", "3")
    results: list[tuple[int, bytes]] = []

    def slow() -> None:
        results.append(_get(proc.port, "/slow?ms=1500"))

    threads = [threading.Thread(target=slow) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while proc.output.count("slow request started") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the line the app prints per request
        assert proc.output.count("slow request started") == 3
        proc.signal(signal.SIGTERM)
        code = proc.wait(60)
        for t in threads:
            t.join(30)
    finally:
        proc.stop()
    assert code == 0
    assert results == [(200, b"hello world")] * 3
    assert "stopped (3 request(s) were in flight, all finished)" in proc.output, proc.output
    assert proc.output.count("stopped: ") == 2  # a report from each worker


_RUN_SPAWNED = """
import sys
from lagscope.serve import AppSpec, Host, resolve, run
config = resolve({"port": 0, "host": "127.0.0.1", "workers": 2}, Host.current())
sys.exit(run(AppSpec("wsgi", "wsgi_apps:app"), config, start_method="spawn"))
"""


def test_spawned_workers_get_the_listening_socket_through_the_pipe(tmp_path: Path) -> None:
    # The Windows path's shape on Linux: fresh interpreters that load the app themselves
    # and receive the listening socket after they started (SCM_RIGHTS here; share() /
    # fromshare() on Windows).
    command = [sys.executable, "-c", _RUN_SPAWNED]
    proc = ServeProcess([], env=_env(tmp_path), cwd=str(HERE), command=command).start()
    try:
        pids = _worker_pids(proc)
        assert len(pids) == 2
        served_by = {int(_get(proc.port, "/pid")[1]) for _ in range(20)}
        assert served_by <= set(pids)
        # The balance table reached the spawned workers too.
        split = _split_of_keep_alive_connections(proc.port, 8)
    finally:
        code = proc.stop()
    assert code == 0
    assert split == {pids[0]: 8, pids[1]: 8}, split  # 4 connections x 2 requests each


def test_a_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}

    def remote(port: int, source: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        try:
            conn.request("GET", "/remote", headers=forged)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    # The proxy is 127.0.0.2; our client connects from 127.0.0.1.
    args = ["wsgi_apps:app", "--port", "0", "--host", "127.0.0.1", "--trusted-proxy", "127.0.0.2"]
    with ServeProcess(args, env=_env(tmp_path), cwd=str(HERE)) as proc:
        untrusted = remote(proc.port, "127.0.0.1")
        trusted = remote(proc.port, "127.0.0.2")
    assert untrusted == "127.0.0.1 -"  # the claim is dropped, the peer address kept
    assert trusted.startswith("203.0.113.9")  # the proxy's own claim is honoured


def test_worker_budget_is_checked_and_shown(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lagscope.cli import main

    runner = CliRunner()
    over = runner.invoke(main, ["serve", "--print-config", "--workers", "4", "--threads", "5"])
    assert over.exit_code == 2
    assert "--workers 4 x --threads 5 = 20 exceeds --db-connections 16" in over.output
    shown = runner.invoke(main, ["serve", "--print-config", "--workers", "3", "--threads", "2"])
    assert shown.exit_code == 0, shown.output
    assert "3 worker(s) x 2 thread(s) = 6" in shown.output


def test_a_worker_that_cannot_load_stops_start_up_in_one_line(tmp_path: Path) -> None:
    import subprocess

    from lagscope.serve import serve_command

    with socket.socket() as probe:  # nothing listens here
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    res = subprocess.run(
        serve_command(
            ["--demo", "--workers", "2", "--database", f"postgresql://u@127.0.0.1:{port}/x"]
        ),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 4
    assert res.stderr.strip().splitlines()[-1].startswith("lagscope: database: ")
    assert "Traceback" not in res.stderr

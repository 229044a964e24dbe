"""``lagscope inject`` on the command line: TOML routes, readiness lines, the JSON-lines log,
clean Ctrl+C under PYTHONDEVMODE, and one-line errors with documented exit codes."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from lagscope.cli import main
from lagscope.inject import Injector, Route
from lagscope.inject.cli import counters_table
from lagscope.inject.log import record_from_json
from support.inject_servers import EchoServer

READY = re.compile(r"^inject: (\S+) listening on 127\.0\.0\.1:(\d+) -> ")


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a child process")
@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_cli_two_routes_from_toml_log_and_clean_stop(
    echo_server: EchoServer, tmp_path: Path, signum: int
) -> None:
    host, port = echo_server.address
    config = tmp_path / "routes.toml"
    config.write_text(
        f"""
[[route]]
name = "app"
listen = "127.0.0.1:0"
upstream = "{host}:{port}"
  [[route.fault]]
  kind = "tax"
  delay_ms = 150

[[route]]
name = "db"
listen = "127.0.0.1:0"
upstream = "{host}:{port}"
""",
        encoding="utf-8",
    )
    log = tmp_path / "truth.jsonl"
    env = {**os.environ, "PYTHONDEVMODE": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lagscope", "inject", "--config", str(config), "--log", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ports = {}
        for _ in range(2):
            line = proc.stdout.readline()
            m = READY.match(line)
            assert m, f"not a readiness line: {line!r}"
            ports[m.group(1)] = int(m.group(2))
        assert set(ports) == {"app", "db"}
        elapsed = {}
        for name, p in ports.items():
            with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
                t = time.perf_counter()
                s.sendall(b"ping")
                assert s.recv(10) == b"ping"
                elapsed[name] = time.perf_counter() - t
        assert elapsed["app"] >= 0.14 and elapsed["db"] < 0.1
        # Wait for both records to be written (the log is flushed per record).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
            time.sleep(0.02)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "ResourceWarning" not in stderr, stderr
    assert "inject: stopped; 2 connections (1 taxed" in stderr
    assert stderr.rstrip().endswith("lagscope: interrupted")
    records = {r.route: r for r in map(record_from_json, log.read_text().splitlines())}
    assert records["app"].tax_applied_ms is not None and records["app"].tax_applied_ms >= 145
    assert records["db"].faults == () and records["db"].end == "closed"


def test_cli_duration_and_flags(echo_server: EchoServer) -> None:
    host, port = echo_server.address
    result = CliRunner().invoke(
        main,
        [
            "inject",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            f"{host}:{port}",
            "--fault",
            "tax:300",
            "--route",
            f"db=127.0.0.1:0 {host}:{port} latency:5,jitter_ms=1 reset:1000,probability=0.1,seed=2",
            "--duration-s",
            "0.3",
            "--chunk-bytes",
            "16384",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "r0 listening on 127.0.0.1:" in result.output
    assert "(tax 300 ms (both))" in result.output
    assert "db listening on" in result.output
    assert "reset after 1000 B (both) [p=0.1 seed=2]" in result.output


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--listen", "127.0.0.1:0"], 2, "--listen and --upstream go together"),
        ([], 2, "nothing to proxy"),
        (["--listen", "127.0.0.1:0", "--upstream", ":1", "--fault", "tax:x"], 2, "bad value"),
        (["--listen", "0.0.0.0:0", "--upstream", ":1"], 2, "not a loopback address"),
        (["--config", "/nonexistent/routes.toml"], 2, "cannot read"),
        (["--listen", ":0", "--upstream", ":1", "--chunk-bytes", "0"], 2, "--chunk-bytes"),
        (["--listen", ":0", "--upstream", ":1", "--log", "/nonexistent/x.jsonl"], 8, "log"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], code: int, needle: str) -> None:
    result = CliRunner().invoke(main, ["inject", *args])
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("lagscope:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output


_ROUTE = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backlog", "99999999999"], "--backlog must be at most 65535"),
        (["--connect-timeout-s", "nan"], "--connect-timeout-s must be a finite number"),
        (["--shutdown-timeout-s", "nan"], "--shutdown-timeout-s must be a finite number"),
        (["--duration-s", "nan"], "--duration-s must be a finite number"),
        (["--duration-s", "inf"], "--duration-s must be a finite number"),
        (["--fault", "tax"], "tax: needs a value for delay_ms (e.g. tax:300)"),
        (["--fault", "tax:300,delay_ms=5"], "delay_ms is given twice"),
        (["--fault", "latency:jitter_ms=5"], "latency: needs a value for delay_ms"),
        (["--fault", "bandwidth"], "bandwidth: needs a value for bytes_per_s"),
        (["--upstream", "127.0.0.1:99999"], "port must be 0-65535"),
    ],
)
def test_nonsense_is_a_one_line_usage_error(args: list[str], needle: str) -> None:
    # Each of these passed (or raised) before any check: nothing may start listening.
    result = CliRunner().invoke(main, ["inject", *_ROUTE, *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("lagscope: config: ") and needle in result.output
    assert result.output.count("\n") == 1
    assert "listening" not in result.output


def test_config_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_bytes(b"[[route]]\nname = '\xe9t\xe9'\nlisten = ':0'\nupstream = ':1'\n")
    result = CliRunner().invoke(main, ["inject", "--config", str(path)])
    assert result.exit_code == 2, result.output
    expected = f"{path}: not UTF-8 text (byte 0xe9 at offset 18); save it as UTF-8\n"
    assert result.output == f"lagscope: config: {expected}"


def test_cli_non_loopback_needs_the_flag_and_warns() -> None:
    # 192.0.2.1 (TEST-NET-1) is not on this machine, so binding fails after the warning:
    # nothing ever listens beyond loopback.
    result = CliRunner().invoke(
        main, ["inject", "--listen", "192.0.2.1:0", "--upstream", ":1", "--allow-non-loopback"]
    )
    assert "warning: listening on non-loopback 192.0.2.1" in result.output
    assert result.exit_code == 8
    assert "cannot listen on 192.0.2.1:0" in result.output


def test_live_counters_table(echo_server: EchoServer) -> None:
    route = Route(("127.0.0.1", 0), echo_server.address, name="app")
    with Injector([route]) as inj:
        host, port = inj.address(0)
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"12345")
            assert s.recv(10) == b"12345"
        inj.wait_records(1)
        console = Console(file=io.StringIO(), width=200, no_color=True)
        console.print(counters_table(inj))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    row = next(line for line in out.splitlines() if "app" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[0] == "app"
    assert cells[1:4] == ["1", "0", "1"]  # accepted, active, closed
    assert cells[-2:] == ["5", "5"]  # bytes each way

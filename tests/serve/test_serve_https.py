"""``serve --https``: granian with TLS from the local CA, ALPN h2 and http/1.1; the choice of
server; and a real Chromium that trusts the CA only after ``lagscope cert install``."""

from __future__ import annotations

import http.client
import importlib.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lagscope.cli import main
from lagscope.instrument.servertiming import parse_headers
from lagscope.serve import ServeProcess
from lagscope.serve.settings import resolve
from lagscope.settings_table import Host, SettingsError
from support.chromium import CHROMIUM

HOST = Host(cpu_count=2, platform="linux")
needs_granian = pytest.mark.skipif(
    importlib.util.find_spec("granian") is None, reason="granian not installed"
)


def test_https_picks_granian_when_installed_and_says_why() -> None:
    config = resolve({"https": True}, HOST, granian_installed=True)
    assert config.server == "granian"
    assert "waitress has no TLS" in config.why["server"]
    assert resolve({}, HOST, granian_installed=True).server == "waitress"


@pytest.mark.parametrize(
    ("overrides", "installed"),
    [({"https": True}, False), ({"https": True, "server": "waitress"}, True)],
)
def test_https_on_waitress_is_refused_with_the_two_ways_out(
    overrides: dict[str, object], installed: bool
) -> None:
    with pytest.raises(SettingsError) as err:
        resolve(overrides, HOST, granian_installed=installed)
    line = err.value.one_line()
    assert "waitress has no TLS" in line
    assert "--server granian" in line and "nginx-config --https" in line


def test_tls_files_go_together_and_only_with_https() -> None:
    with pytest.raises(SettingsError, match="go together"):
        resolve({"https": True, "tls_cert_file": "c.pem"}, HOST, granian_installed=True)
    with pytest.raises(SettingsError, match="applies to --https"):
        resolve({"tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, HOST)


def test_the_cli_exits_2_in_one_line() -> None:
    result = CliRunner().invoke(main, ["serve", "--demo", "--https", "--server", "waitress"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "waitress has no TLS" in result.stderr


@pytest.fixture(scope="module")
def https_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("https-data")
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(data_dir))
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    with ServeProcess(["--demo", "--https", "--port", "0"], env=env) as proc:
        proc.data_dir = data_dir  # type: ignore[attr-defined]
        yield proc


def _ca(proc: ServeProcess) -> str:
    return str(proc.data_dir / "cert" / "rootCA.pem")  # type: ignore[attr-defined]


def _ca_in(data_dir: Path) -> str:
    return str(data_dir / "cert" / "rootCA.pem")


def _alpn(proc: ServeProcess, offered: list[str]) -> str | None:
    ctx = ssl.create_default_context(cafile=_ca(proc))
    ctx.set_alpn_protocols(offered)
    with (
        socket.create_connection(("127.0.0.1", proc.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.selected_alpn_protocol()


@needs_granian
def test_serves_tls_with_alpn_h2_and_http11(https_demo: ServeProcess) -> None:
    assert https_demo.url.startswith("https://127.0.0.1:")
    assert "granian" in https_demo.output
    assert "lagscope cert install" in https_demo.output
    assert _alpn(https_demo, ["h2", "http/1.1"]) == "h2"
    assert _alpn(https_demo, ["http/1.1"]) == "http/1.1"


@needs_granian
def test_http11_over_tls_keeps_the_connection_and_server_timing(https_demo: ServeProcess) -> None:
    ctx = ssl.create_default_context(cafile=_ca(https_demo))
    conn = http.client.HTTPSConnection("localhost", https_demo.port, context=ctx, timeout=15)
    try:
        for _ in range(3):
            conn.request("GET", "/api/items/")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and b'"count": 500' in body
            names = {m.name for m in parse_headers(resp.headers.get_all("Server-Timing") or [])}
            assert {"total", "db"} <= names
        sock = conn.sock
        conn.request("GET", "/items/")
        assert conn.getresponse().read().count(b"<tr><td>LS-") == 500
        assert conn.sock is sock  # one connection for all four
    finally:
        conn.close()


@needs_granian
def test_a_plain_http_request_on_the_tls_port_gets_no_http_answer(
    https_demo: ServeProcess,
) -> None:
    # What start-up warns about: the TLS layer answers (an alert record), never HTTP.
    with socket.create_connection(("127.0.0.1", https_demo.port), timeout=10) as s:
        peer_port = s.getsockname()[1]
        s.sendall(b"GET /\x1b]0;title\x07 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        first = s.recv(64)
    assert not first.startswith(b"HTTP/")
    assert first[:1] == b"\x15"  # a TLS alert record
    assert "plain http:// request here gets no HTTP answer" in https_demo.output
    # serve's console says it happened, from which client, and where to go instead
    line = https_demo.wait_for_line("a plain http:// request reached this TLS-only port", 20)
    assert line is not None, https_demo.output
    assert f"from 127.0.0.1:{peer_port}" in line
    assert line.endswith(f"open https://127.0.0.1:{https_demo.port}/ instead")
    assert "\x1b" not in https_demo.output  # what the client sent never reaches the console
    # lagscope's own client says what happened, in one line
    url = f"http://127.0.0.1:{https_demo.port}/api/items/?token=s3cret"
    result = CliRunner().invoke(main, ["probe", "--cold", "1", "--warm", "1", url])
    assert result.exit_code == 7
    https_url = f"https://127.0.0.1:{https_demo.port}/api/items/?token="
    assert f"this port speaks HTTPS; use {https_url}" in result.stderr
    assert "s3cret" not in result.stderr


@needs_granian
def test_a_client_that_refuses_the_certificate_is_told_about_cert_install(
    https_demo: ServeProcess,
) -> None:
    untrusting = ssl.create_default_context()  # not the local CA
    with (
        socket.create_connection(("127.0.0.1", https_demo.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(raw, server_hostname="localhost")
    line = https_demo.wait_for_line("refused the TLS certificate", 20)
    assert line is not None, https_demo.output
    assert "(UnknownCA)" in line and "lagscope cert install" in line


def _chromium_dom(url: str, home: Path) -> str:
    assert CHROMIUM is not None
    res = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={home / 'profile'}",
            "--dump-dom",
            url,
        ],
        env=dict(os.environ, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return res.stdout


@needs_granian
@pytest.mark.skipif(CHROMIUM is None or shutil.which("certutil") is None, reason="chromium, NSS")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux NSS store")
def test_chromium_trusts_the_server_only_after_cert_install(
    https_demo: ServeProcess, tmp_path: Path
) -> None:
    url = f"https://localhost:{https_demo.port}/api/items/"
    before = _chromium_dom(url, tmp_path)
    assert '"count": 500' not in before  # the certificate error page, not the JSON
    env = {"HOME": str(tmp_path), "LAGSCOPE_DATA_DIR": str(https_demo.data_dir)}  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["cert", "install"], env=env)
    assert result.exit_code == 0, result.output
    assert '"count": 500' in _chromium_dom(url, tmp_path)
    result = CliRunner().invoke(main, ["cert", "uninstall"], env=env)
    assert result.exit_code == 0, result.output
    # a fresh profile (no cached session), the same NSS database without the CA
    shutil.rmtree(tmp_path / "profile")
    assert '"count": 500' not in _chromium_dom(url, tmp_path)


@needs_granian
def test_trusted_proxy_holds_over_https(tmp_path: Path) -> None:
    # granian has no forwarded-header rule of its own: serve puts waitress's in front.
    here = Path(__file__).resolve().parent
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(tmp_path))
    args = ["wsgi_apps:app", "--https", "--port", "0", "--host", "127.0.0.1"]
    with ServeProcess([*args, "--trusted-proxy", "127.0.0.2"], env=env, cwd=str(here)) as proc:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert" / "rootCA.pem"))

        def remote(source: str) -> str:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", proc.port, context=ctx, timeout=10, source_address=(source, 0)
            )
            try:
                conn.request("GET", "/remote", headers={"X-Forwarded-For": "203.0.113.9"})
                return conn.getresponse().read().decode()
            finally:
                conn.close()

        untrusted, trusted = remote("127.0.0.1"), remote("127.0.0.2")
    assert untrusted == "127.0.0.1 -"  # the claim dropped, the peer kept
    assert trusted.startswith("203.0.113.9")  # the proxy's claim honoured


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@needs_granian
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_an_open_http2_connection_does_not_hold_the_stop(tmp_path: Path) -> None:
    """A browser tab's HTTP/2 connection open when Ctrl+C/SIGTERM arrives kept granian's
    worker from ever stopping (the master waited on it for good); --shutdown-timeout
    bounds it, and no worker is left behind."""
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(tmp_path))
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    args = ["--demo", "--https", "--port", "0", "--shutdown-timeout", "1"]
    with ServeProcess(args, env=env) as proc:
        assert proc.pid is not None
        workers = _children(proc.pid)
        assert workers, "granian runs its worker as a child process"
        ctx = ssl.create_default_context(cafile=_ca_in(tmp_path))
        ctx.set_alpn_protocols(["h2"])
        with (
            socket.create_connection(("127.0.0.1", proc.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == "h2"
            # The client preface and an empty SETTINGS frame; the server answers with its own.
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
            assert tls.recv(9)[3] == 0x4  # a SETTINGS frame: the connection is up
            proc.signal(signal.SIGTERM)
            code = proc.wait(20)  # 1 s of grace, then the worker is killed
    assert code == 0, proc.output
    assert all(_gone(w) for w in workers), proc.output

"""``nginx-config --https``: real nginx with TLS and HTTP/2 in front of real waitress, still
on one upstream keep-alive connection; plain http:// on the TLS port is redirected."""

from __future__ import annotations

import datetime as dt
import http.client
import socket
import ssl
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path, PurePath
from typing import Any

import pytest
from click.testing import CliRunner

from lagscope.cert.authority import make_ca, make_leaf
from lagscope.cli import main
from lagscope.nginx.cli import parse_nginx_version
from lagscope.nginx.config import Endpoint
from lagscope.nginx.render import NginxConfig, Tls, render
from support.wsgi import waitress_server

StartNginx = Callable[..., AbstractContextManager[int]]


def _render(version: tuple[int, int, int] | None) -> str:
    tls = Tls(PurePath("/c/localhost.pem"), PurePath("/c/localhost-key.pem"), version)
    listen = (Endpoint("127.0.0.1", 8443), Endpoint("::1", 8443))
    return render(NginxConfig(upstream=Endpoint("127.0.0.1", 8000), listen=listen, tls=tls))


def test_http2_syntax_follows_the_nginx_version() -> None:
    old = _render((1, 22, 1))
    assert "listen 127.0.0.1:8443 ssl http2;" in old and "http2 on;" not in old
    new = _render((1, 25, 1))
    assert "listen [::1]:8443 ssl;" in new and "    http2 on;" in new
    assert "ssl http2" not in new
    assert "ssl http2" in _render(None)  # unknown version: the syntax every version accepts
    for text in (old, new):
        assert 'ssl_certificate "/c/localhost.pem";' in text
        assert "error_page 497 =301 https://$host:$server_port$request_uri;" in text
        assert "keepalive 16;" in text and "proxy_http_version 1.1;" in text


def test_parse_nginx_version() -> None:
    assert parse_nginx_version("nginx version: nginx/1.22.1\n") == (1, 22, 1)
    assert parse_nginx_version("nginx version: openresty/1.21.4.1") is None


def test_tls_files_go_together() -> None:
    args = ["nginx-config", "--upstream", "127.0.0.1:8000"]
    res = CliRunner().invoke(main, [*args, "--https", "--tls-cert-file", "c.pem"])
    assert res.exit_code == 2 and "go together" in res.stderr
    res = CliRunner().invoke(main, [*args, "--tls-cert-file", "c.pem"])
    assert res.exit_code == 2 and "applies to --https" in res.stderr


class RecordingApp:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.seen.append(
            (str(environ.get("REMOTE_PORT")), str(environ.get("HTTP_X_FORWARDED_PROTO")))
        )
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Tls, str]:
    now = dt.datetime.now(dt.timezone.utc)
    ca = make_ca("test@host", now)
    leaf = make_leaf(ca, now)
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    from lagscope.nginx.binary import find_nginx
    from lagscope.nginx.cli import nginx_version

    found = find_nginx()
    version = nginx_version(found) if found else None
    return Tls(tmp_path / "c.pem", tmp_path / "k.pem", version), ca.cert_pem.decode()


@pytest.mark.nginx
def test_https_listener_speaks_h2_and_keeps_one_upstream_connection(
    start_nginx: StartNginx, tls: tuple[Tls, str]
) -> None:
    tls_cfg, ca_pem = tls
    app = RecordingApp()
    server = waitress_server(app, threads=2, clear_untrusted_proxy_headers=False)
    with server as (host, port), start_nginx(Endpoint(host, port), tls=tls_cfg) as nginx_port:
        ctx = ssl.create_default_context(cadata=ca_pem)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", nginx_port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            assert s.selected_alpn_protocol() == "h2"
        h1 = ssl.create_default_context(cadata=ca_pem)
        for _ in range(3):
            conn = http.client.HTTPSConnection("localhost", nginx_port, context=h1, timeout=10)
            try:
                for _ in range(3):
                    conn.request("GET", "/api/items/")
                    resp = conn.getresponse()
                    assert resp.status == 200 and resp.read() == b"ok"
            finally:
                conn.close()
        plain = http.client.HTTPConnection("127.0.0.1", nginx_port, timeout=10)
        try:
            plain.request("GET", "/items/?page=2")
            resp = plain.getresponse()
            resp.read()
        finally:
            plain.close()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://127.0.0.1:{nginx_port}/items/?page=2"
    assert len(app.seen) == 9  # the redirected request never reached the app
    assert len({p for p, _ in app.seen}) == 1  # one upstream connection for all nine
    assert {proto for _, proto in app.seen} == {"https"}

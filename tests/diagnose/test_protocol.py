"""diagnose on an https URL reports the protocol the server offers a browser (ALPN)."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lagscope.cert.authority import make_ca, make_leaf
from lagscope.diagnose import run


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@contextmanager
def tls_server(tmp_path: Path, alpn: list[str]) -> Iterator[int]:
    """A real TLS server on loopback (HTTP/1.1 inside) whose ALPN list is ``alpn``."""
    now = dt.datetime.now(dt.timezone.utc)
    leaf = make_leaf(make_ca("t@h", now), now)
    (tmp_path / "c.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "k.pem").write_bytes(leaf.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    ctx.set_alpn_protocols(alpn)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("server_alpn", "reported", "advice"),
    [(["h2", "http/1.1"], "h2", "offers HTTP/2"), (["http/1.1"], "http/1.1", "HTTP/1.1 only")],
)
def test_the_protocol_rung_reports_what_the_server_picks(
    tmp_path: Path, server_alpn: list[str], reported: str, advice: str
) -> None:
    with tls_server(tmp_path, server_alpn) as port:
        report = run(f"https://127.0.0.1:{port}/", quick=True, verify_tls=False, max_time_s=30)
    rung = next(r for r in report.rungs if r.name == "protocol")
    figures = {f.name: f.value for f in rung.figures}
    assert figures["alpn"] == reported
    assert isinstance(figures["tls_handshake_ms"], float) and figures["tls_handshake_ms"] > 0
    assert advice in rung.notes[0]
    # the rest of the ladder still speaks HTTP/1.1 (h11) over TLS
    assert all(r.status == 200 for r in report.requests if r.series != "cheap")

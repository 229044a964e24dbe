"""Real nginx in front of real waitress: the generated config keeps ONE upstream connection.

The WSGI app records the client port waitress saw (REMOTE_PORT) for every request, so the
number of distinct ports is the number of upstream connections nginx opened. The negative
controls strip the keep-alive pieces from the same config and must see one upstream
connection per request.
"""

from __future__ import annotations

import http.client
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from lagscope.instrument.request_start import parse_request_start
from lagscope.nginx.config import Endpoint, NginxSettings
from lagscope.nginx.render import NginxConfig, render
from support.pg import running_as_root
from support.wsgi import waitress_server

pytestmark = pytest.mark.nginx

StartNginx = Callable[..., AbstractContextManager[int]]

CLIENT_CONNECTIONS = 3
REQUESTS_PER_CONNECTION = 3
KEEPALIVE_PIECES = ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";')


class RecordingApp:
    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.seen.append(
            {
                k: str(environ.get(k, ""))
                for k in (
                    "REMOTE_PORT",
                    "HTTP_HOST",
                    "HTTP_X_FORWARDED_FOR",
                    "HTTP_X_FORWARDED_PROTO",
                    "HTTP_X_REQUEST_START",
                    "HTTP_CONNECTION",
                    "SERVER_PROTOCOL",
                )
            }
        )
        body = b"ok"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [body]


def _requests_through(port: int) -> None:
    """Several requests on each of several new client connections, one after another."""
    for _ in range(CLIENT_CONNECTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for _ in range(REQUESTS_PER_CONNECTION):
                conn.request("GET", "/api/items/")
                resp = conn.getresponse()
                assert resp.status == 200
                assert resp.read() == b"ok"
        finally:
            conn.close()


def _strip(text: str, pieces: Iterable[str]) -> str:
    lines = text.splitlines(keepends=True)
    for piece in pieces:
        matches = [ln for ln in lines if ln.strip() == piece]
        assert len(matches) == 1, piece  # the piece was there, so removing it means something
        lines.remove(matches[0])
    return "".join(lines)


def test_generated_config_passes_nginx_t(nginx: Path, nginx_prefix: Path) -> None:
    import subprocess

    for settings in (NginxSettings(), NginxSettings(upstream_keepalive=0, worker_processes=2)):
        conf = nginx_prefix / "nginx.conf"
        conf.write_text(
            render(
                NginxConfig(
                    upstream=Endpoint("127.0.0.1", 8000),
                    listen=(Endpoint("127.0.0.1", 8080), Endpoint("::1", 8080)),
                    settings=settings,
                    prefix=nginx_prefix,
                )
            )
        )
        res = subprocess.run(
            [str(nginx), "-t", "-p", str(nginx_prefix), "-c", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert "test is successful" in res.stderr


def test_requests_share_one_upstream_connection(start_nginx: StartNginx) -> None:
    app = RecordingApp()
    # Waitress drops X-Forwarded-* from a proxy it does not trust; keep them to see them.
    server = waitress_server(app, threads=2, clear_untrusted_proxy_headers=False)
    with server as (host, port), start_nginx(Endpoint(host, port)) as nginx_port:
        before_s = time.time()
        _requests_through(nginx_port)
        after_s = time.time()
    total = CLIENT_CONNECTIONS * REQUESTS_PER_CONNECTION
    assert len(app.seen) == total
    assert len({r["REMOTE_PORT"] for r in app.seen}) == 1, [r["REMOTE_PORT"] for r in app.seen]
    for r in app.seen:
        assert r["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert r["HTTP_CONNECTION"] == ""
        assert r["HTTP_HOST"] == f"127.0.0.1:{nginx_port}"
        assert r["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
        assert r["HTTP_X_FORWARDED_PROTO"] == "http"
        assert r["HTTP_X_REQUEST_START"].startswith("t=")
        # The Django instrumentation's own parser reads what nginx sends.
        start_s = parse_request_start(r["HTTP_X_REQUEST_START"])
        assert start_s is not None
        assert before_s - 1 <= start_s <= after_s + 1


@pytest.mark.parametrize(
    "removed",
    [KEEPALIVE_PIECES, *((p,) for p in KEEPALIVE_PIECES)],
    ids=["all-three", "no-keepalive", "no-http-1.1", "no-empty-connection"],
)
def test_without_keepalive_pieces_every_request_opens_a_connection(
    start_nginx: StartNginx, removed: tuple[str, ...]
) -> None:
    app = RecordingApp()
    strip = lambda text: _strip(text, removed)  # noqa: E731
    with (
        waitress_server(app, threads=2) as (host, port),
        start_nginx(Endpoint(host, port), transform=strip) as nginx_port,
    ):
        _requests_through(nginx_port)
    total = CLIENT_CONNECTIONS * REQUESTS_PER_CONNECTION
    assert len(app.seen) == total
    assert len({r["REMOTE_PORT"] for r in app.seen}) == total


@pytest.mark.skipif(
    not running_as_root() or shutil.which("runuser") is None,
    reason="needs root and runuser to start nginx as an unprivileged user",
)
def test_prefix_config_runs_as_an_unprivileged_user(
    start_nginx: StartNginx, nginx_prefix: Path
) -> None:
    app = RecordingApp()
    with (
        waitress_server(app) as (host, port),
        start_nginx(Endpoint(host, port), run_as="nobody") as nginx_port,
    ):
        _requests_through(nginx_port)
        # The master itself created its files, so they show who it ran as.
        owner_uid = (nginx_prefix / "access.log").stat().st_uid
    if sys.platform != "win32":  # skipped there already; this tells mypy --platform win32
        import pwd

        assert owner_uid == pwd.getpwnam("nobody").pw_uid
    assert len(app.seen) == CLIENT_CONNECTIONS * REQUESTS_PER_CONNECTION
    assert len({r["REMOTE_PORT"] for r in app.seen}) == 1

"""The shared test servers themselves work and shut down cleanly."""

from __future__ import annotations

import socket

from support.pg import PgCluster
from support.wsgi import waitress_server


def _hello(environ: object, start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
    return [b"hi"]


def test_waitress_server_answers_and_stops() -> None:
    with waitress_server(_hello) as (host, port), socket.create_connection((host, port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"hi")


def test_pg_cluster_accepts_queries(pg_cluster: PgCluster) -> None:
    assert pg_cluster.psql("select 40 + 2").strip() == "42"

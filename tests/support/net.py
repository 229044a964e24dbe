"""Small client-side helpers shared by the tests: a loopback port nothing listens on, and one
GET on an ``http.client`` connection with its body read (so the connection can be reused)."""

from __future__ import annotations

import http.client
import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bound, then released).

    For servers that cannot bind port 0 and report it back (PostgreSQL, nginx), and as a
    closed port for "connection refused"; a caller that starts a server on it retries on
    the small race with another process.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    """GET ``path`` on ``conn`` and read the whole body, leaving the connection reusable."""
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response

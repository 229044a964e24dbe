"""The client connection's facts, carried from the reload front to the app process.

Behind ``serve --reload`` the app's TCP peer is the front, over a connection it opened in
advance, so neither ``REMOTE_ADDR`` nor "is this the first request on the connection"
describes the client. The front adds one header, :data:`CLIENT_HEADER` (``new|reused
ADDR PORT``), with the run's secret :data:`TOKEN_HEADER`; the app process's
:class:`FrontFactsMiddleware` (outermost) honours it only with that token, sets
``REMOTE_ADDR`` / ``REMOTE_PORT`` from it and the environ key
:data:`~lagscope.instrument.connections.CLIENT_CONNECTION_NEW` (what Server-Timing ``conn``
reads), and removes both headers either way. ``--trusted-proxy`` then applies to the real
client address as without ``--reload``: waitress's own proxy-header middleware runs inside
this one. Pure apart from the WSGI call.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

from lagscope.instrument.connections import CLIENT_CONNECTION_NEW

__all__ = [
    "CLIENT_HEADER",
    "TOKEN_HEADER",
    "FrontFactsMiddleware",
    "client_header",
    "is_front_header",
    "parse_client_header",
]

TOKEN_HEADER = b"x-lagscope-front"
CLIENT_HEADER = b"x-lagscope-client"
_TOKEN_KEY = "HTTP_X_LAGSCOPE_FRONT"
_CLIENT_KEY = "HTTP_X_LAGSCOPE_CLIENT"

WSGIApp = Callable[..., Iterable[bytes]]


def is_front_header(name: bytes) -> bool:
    """A header name (lower case) only the front may send: a client's copy is dropped.
    Underscore spellings too (some servers map ``_`` and ``-`` to the same environ key)."""
    normal = name.replace(b"_", b"-")
    return normal in (TOKEN_HEADER, CLIENT_HEADER)


def client_header(new: bool, peer: tuple[str, int] | None) -> bytes:
    """The value of :data:`CLIENT_HEADER` for a request on a ``new`` (or reused)
    connection from ``peer``."""
    state = b"new" if new else b"reused"
    if peer is None:
        return state
    return b"%s %s %d" % (state, peer[0].encode("ascii"), peer[1])


def parse_client_header(value: str) -> tuple[bool, str | None, str | None] | None:
    """``(new, addr, port)`` from :data:`CLIENT_HEADER`, or None when it is malformed."""
    parts = value.split(" ")
    if parts[0] not in ("new", "reused") or len(parts) not in (1, 3):
        return None
    if len(parts) == 1:
        return parts[0] == "new", None, None
    if not parts[2].isdigit() or not parts[1] or len(parts[1]) > 64:
        return None
    return parts[0] == "new", parts[1], parts[2]


class FrontFactsMiddleware:
    """In the app process behind the front: the client's facts into the environ."""

    def __init__(self, app: WSGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        token = environ.pop(_TOKEN_KEY, None)
        facts = environ.pop(_CLIENT_KEY, None)
        if (
            token is not None
            and facts is not None
            and hmac.compare_digest(str(token), self.token)
            and (parsed := parse_client_header(str(facts))) is not None
        ):
            new, addr, port = parsed
            environ[CLIENT_CONNECTION_NEW] = new
            if addr is not None and port is not None:
                environ["REMOTE_ADDR"] = addr
                environ["REMOTE_PORT"] = port
        return self.app(environ, start_response)

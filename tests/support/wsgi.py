"""A real waitress server in a background thread, bound to port 0.

Readiness: ``create_server`` has bound and listened before it returns, so the port is
connectable as soon as we have it. Shutdown is lagscope.serve's own
(:meth:`~lagscope.serve.WaitressServer.stop`), so the fixture stops waitress exactly as
``lagscope serve`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server

from lagscope.serve import WaitressServer


@contextmanager
def waitress_server(app: Any, host: str = "127.0.0.1", **adj: Any) -> Iterator[tuple[str, int]]:
    server = create_server(app, host=host, port=0, **adj)
    port = int(server.effective_port)  # type: ignore[union-attr]
    ws = WaitressServer(server, [], port, shutdown_timeout_s=5.0)
    thread = threading.Thread(target=ws.serve, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield host, port
    finally:
        ws.stop()
        ws.wait_stopped(15)
        thread.join(15)


# A JSON hello world with Content-Length: the healthy app of the diagnose tests.
def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = b'{"ok": true}'
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]

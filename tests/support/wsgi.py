"""A real waitress server in a background thread, bound to port 0.

Readiness: ``create_server`` has bound and listened before it returns, so the port is
connectable as soon as we have it. Shutdown goes through waitress's own trigger so the
socket map is closed from the loop thread, not from under it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress import wasyncore
from waitress.server import create_server


@contextmanager
def waitress_server(app: Any, host: str = "127.0.0.1", **adj: Any) -> Iterator[tuple[str, int]]:
    server = create_server(app, host=host, port=0, **adj)
    port = int(server.effective_port)  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield host, port
    finally:
        done = threading.Event()

        def _stop() -> None:
            wasyncore.close_all(server._map)  # type: ignore[union-attr]
            done.set()

        # pull_trigger queues the thunk before it writes to the pipe. A worker's earlier
        # pull can wake the loop in between, run _stop and close the pipe under our write
        # (EBADF, about 1 run in 20 under load). _stop has then run; `done` says so.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(_stop)  # type: ignore[union-attr]
        done.wait(10)
        thread.join(10)
        server.task_dispatcher.shutdown()

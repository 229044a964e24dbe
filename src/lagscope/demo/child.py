"""The app server of the demo's "before" and "hand-tuned" versions, as a child process.

``python -m lagscope.demo.child --port 0 --conn-max-age 0 [--waitress NAME=VALUE ...]
[--no-migrate]``
serves the reference app on plain waitress exactly as a developer would without lagscope:
``waitress.create_server`` with the given adjustments (none: waitress's defaults) and
Django's ``CONN_MAX_AGE`` as given, nothing prewarmed. The database URL comes from
``LAGSCOPE_DEMO_DATABASE`` (never argv, where other local users could read a password),
an extra template directory from ``LAGSCOPE_DEMO_TEMPLATES``.
Start-up migrates and seeds idempotently (unless ``--no-migrate``), then prints
:data:`READY_PREFIX` + URL. The graceful stop signals (SIGINT, SIGTERM and SIGHUP; SIGINT and
SIGBREAK on Windows) end it quietly.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["READY_PREFIX", "child_command", "main"]

READY_PREFIX = "lagscope demo child: listening on "

# The waitress adjustments a version may set, with their types.
WAITRESS_KEYS: dict[str, type[int] | type[float]] = {
    "threads": int,
    "connection_limit": int,
    "channel_timeout": float,
    "cleanup_interval": float,
    "backlog": int,
}


def child_command(
    port: int,
    conn_max_age: int | None,
    waitress: Sequence[tuple[str, str]],
    migrate: bool = True,
) -> list[str]:
    """The argv that runs this module with this interpreter."""
    argv = [sys.executable, "-m", "lagscope.demo.child", "--port", str(port)]
    if not migrate:
        argv.append("--no-migrate")
    argv += ["--conn-max-age", "none" if conn_max_age is None else str(conn_max_age)]
    for name, value in waitress:
        argv += ["--waitress", f"{name}={value}"]
    return argv


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lagscope.demo.child")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--conn-max-age", default="0")
    parser.add_argument("--waitress", action="append", default=[])
    # The database is created and seeded by another version; this one starts without
    # touching it (its first request is its first connect, as for any CONN_MAX_AGE app).
    parser.add_argument("--no-migrate", action="store_true")
    return parser.parse_args(list(argv))


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from lagscope.stopping import graceful_signals

    for signum in graceful_signals():  # SIGINT/SIGTERM/SIGHUP; SIGINT/SIGBREAK on Windows
        signal.signal(signum, _stop)
    adjustments: dict[str, Any] = {}
    for item in args.waitress:
        name, _, value = str(item).partition("=")
        adjustments[name] = WAITRESS_KEYS[name](value)
    conn_max_age = None if args.conn_max_age == "none" else int(args.conn_max_age)

    import django
    from django.conf import settings

    from lagscope.refapp.config import (
        DATABASE_ENV,
        ITEM_COUNT,
        TEMPLATES_ENV,
        build_settings,
        default_data_dir,
    )

    config = build_settings(
        os.environ.get(DATABASE_ENV) or None,
        default_data_dir(),
        template_dirs=tuple(filter(None, [os.environ.get(TEMPLATES_ENV)])),
    )
    config["DATABASES"]["default"]["CONN_MAX_AGE"] = conn_max_age
    settings.configure(**config)
    django.setup()

    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    from lagscope.refapp.seed import ensure_database

    if not args.no_migrate:
        ensure_database(ITEM_COUNT)
        connections.close_all()
    app = get_wsgi_application()

    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=args.port, **adjustments)
    # One host, so one TcpWSGIServer (the stubs do not list its effective_port).
    port = int(server.effective_port)  # type: ignore[union-attr]
    print(f"{READY_PREFIX}http://127.0.0.1:{port}", flush=True)
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

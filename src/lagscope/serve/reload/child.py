"""An app process behind the reload front: ``python -m lagscope.serve.reload.child``.

Started by :mod:`lagscope.serve.reload.run` with :data:`CHILD_ENV` holding the spec, the
resolved config, the front's pid and (POSIX) its end of the handoff socket pair. It imports
the app, runs Django's system checks as runserver does (which also imports the URLconf and
so every view), builds the waitress server (its own listener on 127.0.0.1 port 0 takes only
the switch's warm-up requests) and prewarms its database connections, and only then says
``ready``. Client connections arrive as sockets the front hands over and go back to it
when a newer process takes over (:mod:`lagscope.serve.reload.handed`).

Talks to the front over two pipes: JSON lines on its original stdout (:func:`message`; the
app's own prints go to stderr, where the front's console is), and its stdin: ``go``, then
JSON orders (``recent``: which GETs to warm a successor with; ``warm``: replay those here
before the switch; on Windows the handoff's own messages), and ``stop`` or end-of-file
(the front is gone) starts the graceful drain. Ctrl+C and Ctrl+Break reach every process
of the console's group: ignored here, because the front decides when an app process
stops. A failed import prints the traceback and a failed check its report, as runserver
prints them, then the process exits 3 (:data:`FAILED_EXIT`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

__all__ = ["CHILD_ENV", "FAILED_EXIT", "main", "watch_roots"]

CHILD_ENV = "LAGSCOPE_RELOAD_CHILD"
FAILED_EXIT = 3
# Every writer of the control pipe takes it (the loop thread hands sockets back on it on
# Windows, the stdin thread answers the front, the warm-up thread reports).
_CONTROL_LOCK = threading.Lock()


def message(out: IO[str], kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, **fields}) + "\n"
    with _CONTROL_LOCK:
        out.write(line)
        out.flush()


def _parse(line: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        order = json.loads(line)
        if isinstance(order, dict):
            return order
    return {}


def _carrier(raw: dict[str, Any], control: IO[str]) -> Any:
    """This process's end of the handoff channel (see handoff.py)."""
    from lagscope.serve.reload.handoff import PipeCarrier, UnixCarrier

    if sys.platform == "win32":
        return PipeCarrier(control, int(raw["front_pid"]), _CONTROL_LOCK)
    import socket

    return UnixCarrier(socket.socket(fileno=int(raw["carrier_fd"])))


def watch_roots(kind: str, target: str) -> tuple[list[str], list[str]]:
    """Where the served project's files are (called once the app is imported): the code
    roots and the template directories.

    The reference app: its own package. A Django project or WSGI module: the current
    directory (where manage.py runs) and the directory holding the settings' or app's
    top-level package. Templates: every directory named in ``TEMPLATES`` ``DIRS``."""
    roots: list[Path] = []
    if kind != "demo":
        roots.append(Path.cwd())
    module_name = (
        os.environ.get("DJANGO_SETTINGS_MODULE", "") if kind == "demo" else target.partition(":")[0]
    )
    module_file = getattr(sys.modules.get(module_name), "__file__", None)
    if module_file:
        depth = module_name.count(".")
        here = Path(module_file).resolve().parent
        roots.append(here if kind == "demo" or depth == 0 else here.parents[depth - 1])
    templates: list[Path] = []
    if "django" in sys.modules:
        from django.conf import settings

        if settings.configured:
            for engine in getattr(settings, "TEMPLATES", []):
                templates.extend(Path(str(d)) for d in engine.get("DIRS", []))
    return _unique_dirs(roots), _unique_dirs(templates)


def _unique_dirs(paths: list[Path]) -> list[str]:
    unique: list[str] = []
    for path in paths:
        text = str(path.resolve())
        if text not in unique and Path(text).is_dir():
            unique.append(text)
    return unique


# Library modules a Django app process needs whatever the project: imported by a spare
# before its "go" (none of them reads the settings at import time).
_LIBRARIES = (
    "django.core.handlers.wsgi",
    "django.core.management.base",
    "django.core.checks",
    "django.db.models",
    "django.http",
    "django.urls",
    "django.template.loader",
    "psycopg",
    "psycopg_pool",
    "waitress.server",
)


def _preimport() -> None:
    import importlib

    for name in _LIBRARIES:
        # ImportError: not installed; anything else: a module that wanted the settings,
        # left for after "go" (nothing of it stays configured: the settings module is
        # unset until then).
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _run_checks() -> None:
    """Django's system checks, as runserver runs them (raises SystemCheckError)."""
    from django.core.management.base import BaseCommand

    command = BaseCommand()
    command.check(display_num_errors=False)


def main() -> int:
    main_s = time.perf_counter()
    raw = json.loads(os.environ.pop(CHILD_ENV))
    # The control pipe is the stdout we were given; everything the app prints goes to
    # stderr (the front's console) from here on.
    control = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from lagscope.console import keep_stderr_printable

    keep_stderr_printable()  # waitress, Django and the app log what clients sent
    for name in ("SIGINT", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)

    from lagscope.errors import LagscopeError
    from lagscope.serve.app import AppSpec, load_app
    from lagscope.serve.reload.handed import Handed, replay
    from lagscope.serve.reload.handoff import UnixCarrier, unpack
    from lagscope.serve.server import serve_on
    from lagscope.serve.settings import config_from_dict

    # A spare: everything that does not depend on the project is imported now, while the
    # current app process serves; the project itself only after "go" (its newest code).
    settings_env = os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    _preimport()
    libraries_ms = (time.perf_counter() - main_s) * 1000
    go = sys.stdin.readline()
    if not go.startswith("go"):
        return 0  # the front stopped, or replaced this spare
    if settings_env is not None:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings_env
    migrate = go.split()[1:] == ["migrate"]
    spec = AppSpec(**raw["spec"])
    config = replace(
        config_from_dict(raw["config"]),
        host="127.0.0.1",
        port=0,
        dual_stack=False,
        workers=1,
    )
    start_s = time.perf_counter()
    checks_ms = 0.0
    try:
        loaded = load_app(spec, config, migrate=migrate)
        import_ms = (time.perf_counter() - start_s) * 1000
        if loaded.databases is not None:
            _run_checks()
            checks_ms = (time.perf_counter() - start_s) * 1000 - import_ms
    except LagscopeError as exc:
        message(control, "error", line=exc.one_line(), exit=int(exc.exit_code))
        return int(exc.exit_code)
    except Exception as exc:
        _print_failure(exc)
        message(control, "failed", what=type(exc).__name__)
        return FAILED_EXIT
    from lagscope.serve.reload.handed import RecentGets

    recent = RecentGets(loaded.app)
    loaded.app = recent
    from lagscope.serve.server import open_listeners

    try:
        # Its own listener takes only the warm-up requests of the switch (replay); clients
        # come as sockets the front hands over.
        socks = open_listeners(("127.0.0.1",), 0, config.backlog)
        ws = serve_on(loaded, config, socks)
    except LagscopeError as exc:
        message(control, "error", line=exc.one_line(), exit=int(exc.exit_code))
        return int(exc.exit_code)
    handed = Handed(ws, _carrier(raw, control))
    prewarm_ms = sum(r.elapsed_ms for r in ws.prewarmed)
    code_roots, template_roots = watch_roots(spec.kind, spec.target)
    # Everything imported so far lives as long as the process: out of the collector's
    # reach, so no full collection walks it during the first requests after the switch
    # (a fresh process's first gen-2 collections come early and are the slowest).
    gc.collect()
    gc.freeze()
    message(
        control,
        "ready",
        port=ws.port,
        pid=os.getpid(),
        import_ms=import_ms,
        libraries_ms=libraries_ms,
        checks_ms=checks_ms,
        prewarm_ms=prewarm_ms,
        prewarmed=[[r.what, r.elapsed_ms] for r in ws.prewarmed],
        describe=spec.describe(),
        notes=loaded.notes,
        plans=[[p.alias, p.mode, p.why] for p in loaded.plans],
        watch=code_roots,
        templates=template_roots,
    )

    def warm(requests: list[Any], timeout_s: float) -> None:
        started_s = time.perf_counter()
        answered = replay(ws.port, requests, timeout_s)
        message(control, "warmed", answered=answered, ms=(time.perf_counter() - started_s) * 1000)

    def listen_to_front() -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in sys.stdin:
                if line.strip() == "stop":
                    break
                order = _parse(line)
                kind = order.get("kind")
                if kind == "recent":
                    message(control, "recent", requests=recent.recent())
                elif kind == "warm":
                    threading.Thread(
                        target=warm,
                        args=(list(order.get("requests", [])), float(order.get("timeout_s", 2))),
                        name="lagscope-reload-warm",
                        daemon=True,
                    ).start()
                elif kind in ("conn", "retire"):  # Windows: the carrier is this pipe
                    handed.on_message(order, unpack(order))
        ws.stop()

    threading.Thread(target=listen_to_front, name="lagscope-reload-stdin", daemon=True).start()
    if isinstance(handed.carrier, UnixCarrier):
        threading.Thread(
            target=handed.carrier.serve,
            args=(handed.on_message,),
            name="lagscope-reload-handoff",
            daemon=True,
        ).start()
    ws.serve()
    with contextlib.suppress(OSError, ValueError):
        message(
            control,
            "stopped",
            in_flight=ws.in_flight_at_stop,
            finished=ws.finished,
            abandoned=ws.abandoned,
            handed_back=handed.handed_back,
        )
    if loaded.databases is not None and not ws.aborted:
        loaded.databases.shutdown()
    return 0


def _print_failure(exc: Exception) -> None:
    """As runserver shows it: a failed check's report as is, anything else as a traceback."""
    base = sys.modules.get("django.core.management.base")
    if base is not None and isinstance(exc, base.SystemCheckError):
        sys.stderr.write(f"{exc}\n")
    else:
        traceback.print_exception(exc)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())

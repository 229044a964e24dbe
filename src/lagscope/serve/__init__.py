"""``lagscope serve``: the tuned serving stack, and its Python API.

Owns the settings table (:mod:`lagscope.serve.settings`), response sizing
(:mod:`lagscope.serve.sizing`), app loading (:mod:`lagscope.serve.app`), the database plan,
prewarm and recovery (:mod:`lagscope.serve.database`), the waitress server
(:mod:`lagscope.serve.server`), the waitress/granian launcher
(:mod:`lagscope.serve.launcher`) and a subprocess helper for tests and benchmarks
(:mod:`lagscope.serve.process`).

In-process use (e.g. a benchmark)::

    from lagscope.serve import AppSpec, Host, load_app, resolve, start_waitress
    config = resolve({"port": 0, "host": "127.0.0.1"}, Host.current())
    server = start_waitress(load_app(AppSpec("demo", database=url), config), config)
    threading.Thread(target=server.serve).start()   # server.urls, server.port
    ...
    server.stop(); server.wait_stopped(30)

As a subprocess (what the tests do)::

    with ServeProcess(["--demo", "--port", "0"], env=...) as proc:
        proc.url   # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

from lagscope.serve.app import AppSpec, LoadedApp, load_app
from lagscope.serve.database import DbPlan, PrewarmResult, plan_database
from lagscope.serve.launcher import run
from lagscope.serve.process import ServeProcess, serve_command
from lagscope.serve.server import LISTENING_PREFIX, WaitressServer, start_waitress
from lagscope.serve.settings import (
    SETTINGS,
    Host,
    ServeConfig,
    render_config,
    resolve,
)
from lagscope.serve.sizing import ContentLengthMiddleware

__all__ = [
    "LISTENING_PREFIX",
    "SETTINGS",
    "AppSpec",
    "ContentLengthMiddleware",
    "DbPlan",
    "Host",
    "LoadedApp",
    "PrewarmResult",
    "ServeConfig",
    "ServeProcess",
    "WaitressServer",
    "load_app",
    "plan_database",
    "render_config",
    "resolve",
    "run",
    "serve_command",
    "start_waitress",
]

"""The app factory granian's worker processes import (``lagscope serve --server granian``).

granian starts its workers itself and imports this module by name in each, so the launcher
can hand them only the environment: ``LAGSCOPE_SERVE_SPEC`` holds the app spec and the
config resolved in the launching process, as JSON (:func:`dump_spec`); a worker rebuilds that config
as it was (not re-resolved), loads the app, prewarms its pools, and prints the readiness
line once its own address accepts connections (granian starts listening only after the
factory returns).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from urllib.parse import urlsplit

from lagscope.console import keep_stderr_printable
from lagscope.serve.app import AppSpec, WSGIApp, load_app
from lagscope.serve.server import LISTENING_PREFIX
from lagscope.serve.settings import (
    TRUSTED_PROXY_HEADERS,
    ServeConfig,
    config_as_dict,
    config_from_dict,
)

__all__ = ["SPEC_ENV", "URL_ENV", "create_app", "dump_spec", "load_spec"]

SPEC_ENV = "LAGSCOPE_SERVE_SPEC"
URL_ENV = "LAGSCOPE_SERVE_URL"


def dump_spec(spec: AppSpec, config: ServeConfig) -> str:
    """What the launcher puts in ``LAGSCOPE_SERVE_SPEC``."""
    return json.dumps(
        {
            "kind": spec.kind,
            "target": spec.target,
            "database": spec.database,
            "config": config_as_dict(config),
        }
    )


def load_spec(text: str) -> tuple[AppSpec, ServeConfig]:
    raw = json.loads(text)
    spec = AppSpec(raw["kind"], raw["target"], raw["database"])
    return spec, config_from_dict(raw["config"])


def create_app() -> WSGIApp:
    keep_stderr_printable()  # the app and Django log what clients sent
    spec, config = load_spec(os.environ[SPEC_ENV])
    loaded = load_app(spec, config)
    for note in loaded.notes:
        print(f"lagscope serve: {note}", flush=True)
    if loaded.databases is not None and config.prewarm:
        # granian's blocking threads cannot run a task before serving: pools only.
        for r in loaded.databases.prewarm(add_task=None):
            print(f"lagscope serve: prewarmed {r.what} in {r.elapsed_ms:.1f} ms", flush=True)
        loaded.databases.start_guard()
        if any(p.mode == "persistent" for p in loaded.plans):
            # granian's blocking threads cannot be reached before serving, so persistent
            # connections open on first use (docs/serve.md, known gaps).
            print("lagscope serve: persistent connections open on first use (granian)", flush=True)
    url = os.environ[URL_ENV]
    threading.Thread(
        target=_announce_when_accepting, args=(url, config.prewarm_timeout), daemon=True
    ).start()
    return forwarded_headers(loaded.app, config)


def forwarded_headers(app: WSGIApp, config: ServeConfig) -> WSGIApp:
    """The app behind waitress's own forwarded-header rule, as waitress applies it: the
    ``X-Forwarded-*`` of :data:`TRUSTED_PROXY_HEADERS` honoured from ``--trusted-proxy``
    only, and every proxy header removed from any other peer (granian has no such rule)."""
    from waitress.proxy_headers import proxy_headers_middleware

    wrapped: WSGIApp = proxy_headers_middleware(
        app,
        trusted_proxy=config.trusted_proxy or None,
        trusted_proxy_count=1,
        trusted_proxy_headers=set(TRUSTED_PROXY_HEADERS),
        clear_untrusted=True,
    )
    return wrapped


def _announce_when_accepting(url: str, timeout_s: float) -> None:
    # granian starts listening only after this factory returns, so the readiness line
    # waits until a TCP connect to our own address succeeds.
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 0)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                break
        except OSError:
            time.sleep(0.02)
    print(LISTENING_PREFIX + url, flush=True)

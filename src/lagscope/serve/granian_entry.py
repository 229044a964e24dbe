"""The app factory granian's worker processes import (``lagscope serve --server granian``).

Each worker rebuilds the same app as waitress would serve, from the spec the launcher put
in ``LAGSCOPE_SERVE_SPEC``, prewarms its pools, and prints the readiness line: granian has
bound the socket before it starts workers, so the line means requests will be answered.
"""

from __future__ import annotations

import json
import os

from lagscope.serve.app import AppSpec, WSGIApp, load_app, prewarm_pools
from lagscope.serve.launcher import LISTENING_PREFIX, SPEC_ENV, URL_ENV
from lagscope.serve.settings import Host, resolve

__all__ = ["create_app"]


def create_app() -> WSGIApp:
    raw = json.loads(os.environ[SPEC_ENV])
    spec = AppSpec(raw["kind"], raw["target"], raw["database"])
    config = resolve(raw["overrides"], Host.current())
    loaded = load_app(spec, config)
    for note in loaded.notes:
        print(f"lagscope serve: {note}", flush=True)
    if config.prewarm:
        for r in prewarm_pools(loaded, float(config.prewarm_timeout)):
            print(f"lagscope serve: prewarmed {r.what} in {r.elapsed_ms:.1f} ms", flush=True)
        if any(p.mode == "persistent" for p in loaded.plans):
            # granian's blocking threads cannot be reached before serving, so persistent
            # connections open on first use (docs/serve.md, known gaps).
            print("lagscope serve: persistent connections open on first use (granian)", flush=True)
    print(LISTENING_PREFIX + os.environ[URL_ENV], flush=True)
    return loaded.app

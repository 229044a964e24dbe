"""What a profiled request (``X-Lagscope-Profile: 1``) costs the request itself, side by side.

Run on demand (never in CI):

    uv run --all-extras --group bench python bench/bench_profile.py [--rounds 9] [--batch 40]

The in-process Django project of bench_instrument (no HTTP, no database), lagscope's
middleware first with ``LAGSCOPE = {"PROFILE": True}``, a loopback client. Three views:

* ``/hello/``: the fixed cost of sampling (start, stop, compaction, the header);
* ``/rows/``: call-heavy Python, 500 rows built by a helper each and serialized (pyinstrument's
  hook runs on every call and return, so this is where it costs most);
* ``/sleep/``: 20 ms in ``time.sleep`` (waiting, as on a database or a network call).

Each round times a batch of plain requests and a batch of profiled ones per view, order
rotated; the reported ratio is the median over rounds of profiled / plain from the same
round, which keeps the VM's CPU-speed switching out of the comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

from inprocess_django import COMMON, LAGSCOPE_MW, configure, environ, urlpatterns


def _row(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"item {i}", "price": i * 1.5, "tags": [str(i % 7), str(i % 3)]}


def rows(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(json.dumps([_row(i) for i in range(500)]))


def sleep(request: Any) -> Any:
    from django.http import HttpResponse

    time.sleep(0.02)
    return HttpResponse("slept")


def _runner(handler: Any, path: str, profiled: bool) -> Callable[[int], float]:
    template = {**environ("127.0.0.1"), "PATH_INFO": path}
    if profiled:
        template["HTTP_X_LAGSCOPE_PROFILE"] = "1"
    seen: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.extend(v for k, v in headers if k == "X-Lagscope-Profile")
        return None

    def run(batch: int) -> float:
        start = time.perf_counter()
        for _ in range(batch):
            env = dict(template)
            env["wsgi.input"] = io.BytesIO(b"")
            response = handler(env, start_response)
            for _chunk in response:
                pass
            response.close()
        elapsed = time.perf_counter() - start
        if profiled != bool(seen and seen[-1].startswith("1 ")):
            raise SystemExit(f"bench: {path} profiled={profiled} but saw {seen[-1:]}")
        seen.clear()
        return elapsed / batch

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()
    configure([LAGSCOPE_MW, COMMON])
    from django.core.handlers.wsgi import WSGIHandler
    from django.urls import path

    urlpatterns.extend([path("rows/", rows), path("sleep/", sleep)])
    settings.LAGSCOPE = {"PROFILE": True, "OTEL": "off"}
    handler = WSGIHandler()
    views = ("/hello/", "/rows/", "/sleep/")
    configs = {(v, p): _runner(handler, v, p) for v in views for p in (False, True)}
    for run in configs.values():  # warm-up, and the first profiled request's import
        run(5)
    times: dict[tuple[str, bool], list[float]] = {k: [] for k in configs}
    names = list(configs)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for key in order:
            batch = max(1, args.batch // 10) if key[0] == "/sleep/" else args.batch
            times[key].append(configs[key](batch))
    load = ""
    if sys.platform != "win32":
        load = f", load {os.getloadavg()[0]:.1f}"
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, Django "
        f"{django.get_version()}, {os.cpu_count()} CPUs{load}; "
        f"rounds={args.rounds} batch={args.batch}"
    )
    print("| view | plain ms (median) | profiled ms (median) | added ms (median paired) | ratio |")
    print("|---|---|---|---|---|")
    for v in views:
        plain = [t * 1e3 for t in times[(v, False)]]
        prof = [t * 1e3 for t in times[(v, True)]]
        added = [b - a for a, b in zip(plain, prof, strict=True)]
        ratio = [b / a for a, b in zip(plain, prof, strict=True)]
        print(
            f"| `{v}` | {statistics.median(plain):.3f} | {statistics.median(prof):.3f} "
            f"| {statistics.median(added):+.3f} | {statistics.median(ratio):.2f}× |"
        )


if __name__ == "__main__":
    main()

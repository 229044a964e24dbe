"""Overhead of the lagscope Server-Timing middleware on a minimal Django view, side by side.

Run on demand (never in CI):

    uv run --all-extras --group bench python bench/bench_instrument.py [--rounds 15] [--batch 2000]

Every configuration is its own Django WSGIHandler over the same settings and view (no
database, no HTTP), called in process with a prepared environ, so the only difference is
the middleware chain. Rounds interleave the configurations (order rotated each round); each
round yields a mean per-request time per configuration and the difference to the baseline
from the *same* round. The medians of those paired differences are reported, which keeps
the VM's CPU-speed switching (±30 %) out of the comparison.

Configurations:
* baseline: MIDDLEWARE = [CommonMiddleware]
* lagscope (trusted): lagscope's middleware first, loopback client, full header
* lagscope (untrusted): a non-loopback client; no header, only connection tracking
* lagscope (disabled): LAGSCOPE = {"ENABLED": False}
* lagscope as before profile mode: the same middleware with the sync entry it had before
  (no check for ``X-Lagscope-Profile``), so the pair with the trusted row prices that check
  side by side in one process;
* lagscope, PROFILE on, not asked: profile mode allowed, the request carries no
  ``X-Lagscope-Profile`` (the mode-off path every ordinary request takes);
* lagscope, profiled: the same with ``X-Lagscope-Profile: 1`` (pyinstrument samples the
  request and the response carries the profile), where pyinstrument is installed
* OpenTelemetry: DjangoInstrumentor with the SDK TracerProvider and no exporter, where installed
* django-server-timing: its ServerTiming middleware, where installed
* the OTel bridge (lagscope.instrument.otel), with the SDK's TracerProvider set globally:
  - DjangoInstrumentor + lagscope with OTEL "off" and with OTEL "auto" (enriching the
    instrumentation's span): the difference is what the bridge adds to a traced request;
  - lagscope alone with OTEL "auto" (its own span) against OTEL "off".

Every lagscope row other than the bridge rows runs with OTEL "off", so that the global SDK
provider set for the OpenTelemetry rows does not change them.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

from inprocess_django import COMMON, LAGSCOPE_MW, configure, environ

LAGSCOPE_TRUSTED = "lagscope, trusted client (full header)"
OTEL_ALONE = "OpenTelemetry DjangoInstrumentor (SDK, no exporter)"
OTEL_LAGSCOPE_OFF = "DjangoInstrumentor + lagscope, OTEL off"
OTEL_LAGSCOPE_BRIDGE = "DjangoInstrumentor + lagscope, OTEL bridge enriching its span"
LAGSCOPE_OWN_SPAN = "lagscope alone, OTEL bridge with its own span"
BEFORE_PROFILE_MODE = "lagscope as before profile mode (no profile check)"
PROFILE_NOT_ASKED = "lagscope, trusted, PROFILE on, request not asking"
PROFILED = "lagscope, trusted, profiled (X-Lagscope-Profile: 1)"


def _handler(middleware: list[str], lagscope: dict[str, object] | None = None) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware, LAGSCOPE=lagscope or {}):
        handler = WSGIHandler()
        handler.load_middleware()
    # The chain is built; LAGSCOPE is read per request, so pin it for this handler.
    return handler, lagscope or {}


def _runner(
    handler: Any,
    lagscope: dict[str, object],
    remote_addr: str,
    extra: dict[str, str] | None = None,
) -> Callable[[int], float]:
    template = {**environ(remote_addr), **(extra or {})}
    status: list[str] = []

    profiles: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status.append(s)
        if extra:
            profiles.extend(v for k, v in headers if k == "X-Lagscope-Profile")
        return None

    def run(batch: int) -> float:
        # settings.LAGSCOPE as this handler was built with; set outside the timed loop.
        settings.LAGSCOPE = lagscope
        start = time.perf_counter()
        for _ in range(batch):
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            response = handler(environ, start_response)
            for _chunk in response:
                pass
            response.close()
        elapsed = time.perf_counter() - start
        if status[-1] != "200 OK":
            raise SystemExit(f"bench: unexpected status {status[-1]}")
        status.clear()
        if extra and not (profiles and profiles[-1].startswith("1 ")):
            raise SystemExit(f"bench: no profile in the response ({profiles[-1:]})")
        profiles.clear()
        return elapsed / batch

    return run


def _before_profile_mode() -> None:
    """Define ``WithoutProfileCheck`` in this module (Django imports middleware by path)."""
    from django.http import HttpRequest

    from lagscope.django.middleware import ServerTimingMiddleware

    class WithoutProfileCheck(ServerTimingMiddleware):
        def __call__(self, request: HttpRequest) -> Any:
            started = self._begin(request)
            try:
                response = self.get_response(request)
            finally:
                self._leave(started)
            return self._finish(request, response, started)

    globals()["WithoutProfileCheck"] = WithoutProfileCheck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    configure([COMMON])

    configs: dict[str, Callable[[int], float]] = {}
    skipped: list[str] = []
    off: dict[str, object] = {"OTEL": "off"}
    base, base_opts = _handler([COMMON])
    configs["baseline (CommonMiddleware only)"] = _runner(base, base_opts, "127.0.0.1")
    h, o = _handler([LAGSCOPE_MW, COMMON], off)
    configs[LAGSCOPE_TRUSTED] = _runner(h, o, "127.0.0.1")
    _before_profile_mode()
    h, o = _handler([f"{__name__}.WithoutProfileCheck", COMMON], off)
    configs[BEFORE_PROFILE_MODE] = _runner(h, o, "127.0.0.1")
    h, o = _handler([LAGSCOPE_MW, COMMON], off)
    configs["lagscope, untrusted client (no header)"] = _runner(h, o, "203.0.113.9")
    h, o = _handler([LAGSCOPE_MW, COMMON], {"ENABLED": False})
    configs["lagscope, ENABLED=False"] = _runner(h, o, "127.0.0.1")
    profile_on: dict[str, object] = {"OTEL": "off", "PROFILE": True}
    h, o = _handler([LAGSCOPE_MW, COMMON], profile_on)
    configs[PROFILE_NOT_ASKED] = _runner(h, o, "127.0.0.1")
    try:
        import pyinstrument  # noqa: F401

        h, o = _handler([LAGSCOPE_MW, COMMON], profile_on)
        configs[PROFILED] = _runner(h, o, "127.0.0.1", {"HTTP_X_LAGSCOPE_PROFILE": "1"})
    except ImportError:
        skipped.append("the profiled request (pyinstrument not installed)")
    try:
        import server_timing  # noqa: F401

        h, o = _handler(["server_timing.middleware.ServerTiming", COMMON])
        configs["django-server-timing 0.2.0 (ServerTiming)"] = _runner(h, o, "127.0.0.1")
    except ImportError:
        skipped.append("django-server-timing (not installed)")
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())

        def instrumented(middleware: list[str], lagscope: dict[str, object]) -> Any:
            from django.core.handlers.wsgi import WSGIHandler
            from django.test import override_settings

            with override_settings(MIDDLEWARE=middleware, LAGSCOPE=lagscope):
                DjangoInstrumentor().instrument()
                handler = WSGIHandler()
                handler.load_middleware()
                DjangoInstrumentor().uninstrument()
            return _runner(handler, lagscope, "127.0.0.1")

        configs[OTEL_ALONE] = instrumented([COMMON], {})
        configs[OTEL_LAGSCOPE_OFF] = instrumented([LAGSCOPE_MW, COMMON], off)
        configs[OTEL_LAGSCOPE_BRIDGE] = instrumented([LAGSCOPE_MW, COMMON], {"OTEL": "auto"})
        h, o = _handler([LAGSCOPE_MW, COMMON], {"OTEL": "auto"})
        configs[LAGSCOPE_OWN_SPAN] = _runner(h, o, "127.0.0.1")
    except ImportError:
        skipped.append("OpenTelemetry (not installed)")

    names = list(configs)
    for run in configs.values():  # warm-up
        run(200)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    gc.disable()
    try:
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for n in order:
                per_round[n].append(configs[n](args.batch))
    finally:
        gc.enable()

    base_name = names[0]
    base_us = [t * 1e6 for t in per_round[base_name]]
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, Django "
        f"{django.get_version()}, {os.cpu_count()} CPUs; rounds={args.rounds} "
        f"batch={args.batch}"
    )
    print("| configuration | µs/request (median) | overhead µs (median paired) | overhead % |")
    print("|---|---|---|---|")
    for n in names:
        us = [t * 1e6 for t in per_round[n]]
        diffs = [a - b for a, b in zip(us, base_us, strict=True)]
        ratios = [a / b - 1 for a, b in zip(us, base_us, strict=True)]
        if n == base_name:
            print(f"| {n} | {statistics.median(us):.1f} | - | - |")
        else:
            print(
                f"| {n} | {statistics.median(us):.1f} | {statistics.median(diffs):+.1f} "
                f"| {statistics.median(ratios) * 100:+.1f} % |"
            )
    pairs = [
        (OTEL_LAGSCOPE_BRIDGE, OTEL_LAGSCOPE_OFF),
        (LAGSCOPE_OWN_SPAN, LAGSCOPE_TRUSTED),
        (LAGSCOPE_TRUSTED, BEFORE_PROFILE_MODE),
        (PROFILE_NOT_ASKED, LAGSCOPE_TRUSTED),
        (PROFILED, LAGSCOPE_TRUSTED),
    ]
    pairs = [(a, b) for a, b in pairs if a in per_round and b in per_round]
    if pairs:
        print()
        print("| this adds | µs/request (median paired) | ratio |")
        print("|---|---|---|")
        for a, b in pairs:
            diffs = [(x - y) * 1e6 for x, y in zip(per_round[a], per_round[b], strict=True)]
            ratios = [x / y for x, y in zip(per_round[a], per_round[b], strict=True)]
            print(
                f"| {a} over {b} | {statistics.median(diffs):+.1f} "
                f"| {statistics.median(ratios):.3f}× |"
            )
    for s in skipped:
        print(f"skipped: {s}")


if __name__ == "__main__":
    main()

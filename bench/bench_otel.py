"""What the OpenTelemetry bridge adds to a request, against the same middleware with it off.

Run on demand (never in CI):

    uv run --all-extras python bench/bench_otel.py [--rounds 31] [--batch 2000]

One process, the SDK's TracerProvider and MeterProvider (no exporter), a minimal Django view
called in process through WSGIHandler (no HTTP). Every request runs inside a recording
server span that the bench starts, as opentelemetry-instrumentation-django would, so both
sides pay the same span cost and the paired difference is the bridge alone:

* lagscope, OTEL "off" (the middleware without the bridge);
* lagscope, OTEL "auto" (enriches the bench's span: attributes; no connect here);
* lagscope, OTEL "auto", no span around the request (the bridge starts its own).

Rounds interleave the configurations; medians (and the minimum) of the per-round paired
differences are reported, which keeps the VM's CPU-speed switching out of the comparison.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    configure([LAGSCOPE_MW, COMMON])
    from django.core.handlers.wsgi import WSGIHandler
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    metrics.set_meter_provider(MeterProvider())
    tracer = trace.get_tracer("bench")
    handler = WSGIHandler()
    handler.load_middleware()
    template = environ()

    def runner(mode: str, around_span: bool) -> Callable[[int], float]:
        lagscope = {"OTEL": mode}

        def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
            return None

        def one() -> None:
            environ = dict(template)
            environ["wsgi.input"] = io.BytesIO(b"")
            response = handler(environ, start_response)
            for _chunk in response:
                pass
            response.close()

        def run(batch: int) -> float:
            settings.LAGSCOPE = lagscope
            start = time.perf_counter()
            if around_span:
                for _ in range(batch):
                    with tracer.start_as_current_span("GET", kind=trace.SpanKind.SERVER):
                        one()
            else:
                for _ in range(batch):
                    one()
            return (time.perf_counter() - start) / batch

        return run

    configs = {
        "off, in a span": runner("off", True),
        "auto, enriching the span": runner("auto", True),
        "off, no span": runner("off", False),
        "auto, own span": runner("auto", False),
    }
    names = list(configs)
    for run in configs.values():
        run(300)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    gc.disable()
    try:
        for r in range(args.rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                per_round[n].append(configs[n](args.batch) * 1e6)
    finally:
        gc.enable()
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, Django "
        f"{django.get_version()}, {os.cpu_count()} CPUs; rounds={args.rounds} batch={args.batch}"
    )
    print("| configuration | µs/request (median) |")
    print("|---|---|")
    for n in names:
        print(f"| {n} | {statistics.median(per_round[n]):.1f} |")
    print()
    print("| the bridge adds | µs (median paired) | µs (min paired) | ratio (median) |")
    print("|---|---|---|---|")
    pairs = (("auto, enriching the span", "off, in a span"), ("auto, own span", "off, no span"))
    for a, b in pairs:
        diffs = [x - y for x, y in zip(per_round[a], per_round[b], strict=True)]
        ratios = [x / y for x, y in zip(per_round[a], per_round[b], strict=True)]
        print(
            f"| {a} over {b} | {statistics.median(diffs):+.1f} | {min(diffs):+.1f} "
            f"| {statistics.median(ratios):.3f}× |"
        )


if __name__ == "__main__":
    main()

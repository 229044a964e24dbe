"""``lagscope demo``: the whole story in one command, measured on this machine.

Three versions of the reference app (``lagscope.refapp``) run as child processes behind the
same injected connection tax (``lagscope.inject``) on the HTTP and database side: "before"
(Django and waitress defaults), "hand-tuned" (the fix from the story) and "lagscope"
(``lagscope serve``). Each gets a browser-like fresh visit and a diagnose run; the report
(:class:`DemoReport`, ``lagscope.demo/1``) puts them side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lagscope.lazy import lazy_exports

if TYPE_CHECKING:
    from lagscope.demo.model import SCHEMA, DemoReport, Sample, VersionResult
    from lagscope.demo.runner import DemoOptions, run_demo

# Loaded on first use: the saved-file reader needs the model, not the runner.
__getattr__ = lazy_exports(
    __name__,
    {
        "SCHEMA": "model",
        "DemoReport": "model",
        "Sample": "model",
        "VersionResult": "model",
        "DemoOptions": "runner",
        "run_demo": "runner",
    },
)

__all__ = [
    "SCHEMA",
    "DemoOptions",
    "DemoReport",
    "Sample",
    "VersionResult",
    "run_demo",
]

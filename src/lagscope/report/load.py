"""Reading a saved report of any kind back: the schema field decides the model.

``lagscope.probe/2`` files become a :class:`~lagscope.probe.model.ProbeReport`,
``lagscope.report/2`` files (``lagscope diagnose``) a
:class:`~lagscope.diagnose.model.DiagnoseReport` and ``lagscope.demo/1`` files
(``lagscope demo``) a :class:`~lagscope.demo.model.DemoReport` (files of the earlier
versions, ``/1``, too), each through the one
loader, :mod:`lagscope.saved`. Anything else is refused with one readable reason, so
``lagscope report`` can say it in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lagscope.demo.model import SCHEMA as DEMO_SCHEMA
from lagscope.demo.model import DemoReport
from lagscope.demo.render import load_json as load_demo
from lagscope.diagnose.model import SCHEMAS as DIAGNOSE_SCHEMAS
from lagscope.diagnose.model import DiagnoseReport
from lagscope.diagnose.render import load_json as load_diagnose
from lagscope.probe.model import SCHEMAS as PROBE_SCHEMAS
from lagscope.probe.model import ProbeReport
from lagscope.probe.render import report_from_saved
from lagscope.saved import SavedFileError, load_saved, parse_saved_json

__all__ = ["KNOWN_SCHEMAS", "AnyReport", "MeasuredReport", "load_report", "read_report"]

# What probe and diagnose measure (requests, so an HTML page and a HAR file).
MeasuredReport = ProbeReport | DiagnoseReport
AnyReport = ProbeReport | DiagnoseReport | DemoReport

_MODELS: dict[str, Callable[[Any], AnyReport]] = {
    **dict.fromkeys(PROBE_SCHEMAS, report_from_saved),
    **dict.fromkeys(DIAGNOSE_SCHEMAS, load_diagnose),
    DEMO_SCHEMA: load_demo,
}

KNOWN_SCHEMAS = tuple(_MODELS)


def load_report(text: str) -> AnyReport:
    """Parse a saved report, validated against the published schema its ``"schema"`` field
    names (lagscope.saved). Raises ValueError with a one-line reason."""
    try:
        data = parse_saved_json(text, "report")
    except SavedFileError as exc:
        raise ValueError(exc.reason) from None
    return _model(data)


def read_report(path: Path) -> AnyReport:
    """Read, parse and validate the saved report at ``path``; every failure is one
    ``load: <path>: <reason>`` LagscopeError with exit code 2
    (:func:`lagscope.saved.load_saved`)."""
    return load_saved(path, None, _model)


def _model(data: dict[str, Any]) -> AnyReport:
    kind = data["schema"]
    if kind not in _MODELS:
        # Known to lagscope.saved but not a report this command renders (lagscope.db/1).
        raise ValueError(f"{kind} files are rendered by the command that wrote them")
    return _MODELS[kind](data)

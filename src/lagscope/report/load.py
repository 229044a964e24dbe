"""Reading a saved report of any kind back: the schema field decides the model.

``lagscope.probe/1`` files become a :class:`~lagscope.probe.model.ProbeReport` and
``lagscope.report/1`` files (``lagscope diagnose``) a
:class:`~lagscope.diagnose.model.DiagnoseReport`. Anything else is refused with one
readable reason, so ``lagscope report`` can say it in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lagscope.diagnose.model import SCHEMA as DIAGNOSE_SCHEMA
from lagscope.diagnose.model import DiagnoseReport
from lagscope.diagnose.render import load_json as load_diagnose
from lagscope.probe.model import SCHEMA as PROBE_SCHEMA
from lagscope.probe.model import ProbeReport
from lagscope.probe.render import report_from_saved
from lagscope.saved import SavedFileError, load_saved, parse_saved_json

__all__ = ["KNOWN_SCHEMAS", "AnyReport", "load_report", "read_report"]

AnyReport = ProbeReport | DiagnoseReport

KNOWN_SCHEMAS = (PROBE_SCHEMA, DIAGNOSE_SCHEMA)


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
    if data["schema"] == DIAGNOSE_SCHEMA:
        return load_diagnose(data)
    return report_from_saved(data)

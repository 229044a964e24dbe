"""Reading a saved report of any kind back: the schema field decides the model.

``lagscope.probe/1`` files become a :class:`~lagscope.probe.model.ProbeReport` and
``lagscope.report/1`` files (``lagscope diagnose``) a
:class:`~lagscope.diagnose.model.DiagnoseReport`. Anything else is refused with one
readable reason, so ``lagscope report`` can say it in one line.
"""

from __future__ import annotations

import json
from typing import Any

from lagscope.diagnose.model import SCHEMA as DIAGNOSE_SCHEMA
from lagscope.diagnose.model import DiagnoseReport
from lagscope.diagnose.render import load_json as load_diagnose
from lagscope.probe.model import SCHEMA as PROBE_SCHEMA
from lagscope.probe.model import ProbeReport
from lagscope.probe.render import load_json as load_probe

__all__ = ["KNOWN_SCHEMAS", "AnyReport", "load_report"]

AnyReport = ProbeReport | DiagnoseReport

KNOWN_SCHEMAS = (PROBE_SCHEMA, DIAGNOSE_SCHEMA)


def load_report(text: str) -> AnyReport:
    """Parse a saved report. Raises ValueError with a one-line reason."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == PROBE_SCHEMA:
        return load_probe(text)
    if schema == DIAGNOSE_SCHEMA:
        return load_diagnose(data)
    raise ValueError(
        f"unknown schema {schema!r}; expected one of {', '.join(KNOWN_SCHEMAS)}"
        if schema is not None
        else f'no "schema" field: not a lagscope report (expected {", ".join(KNOWN_SCHEMAS)})'
    )

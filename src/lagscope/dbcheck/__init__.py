"""``manage.py lagscope db``: what a database connect and a round trip cost, per alias,
measured with the project's own settings and driver, and what to do about it.

* :mod:`.model`: the report model (frozen dataclasses) and its JSON form;
* :mod:`.rules`: the findings (``db-connect-slow``, ``db-connect-per-request``) and their
  thresholds, pure;
* :mod:`.measure`: the Django shell that opens connections and times them;
* :mod:`.render`: ``render(report) -> str``.
"""

from __future__ import annotations

from lagscope.dbcheck.model import AliasResult, AliasSettings, DbReport, Finding, Samples
from lagscope.dbcheck.rules import THRESHOLDS, findings_for

__all__ = [
    "THRESHOLDS",
    "AliasResult",
    "AliasSettings",
    "DbReport",
    "Finding",
    "Samples",
    "findings_for",
]

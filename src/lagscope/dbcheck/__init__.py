"""``manage.py lagscope db``: what a database connect and a round trip cost, per alias,
measured with the project's own settings and driver, and what to do about it.

* :mod:`.model`: the report model (frozen dataclasses) and its JSON form;
* :mod:`.rules`: the findings (``db-connect-slow``, ``db-connect-per-request``) with the
  rules and thresholds of ``lagscope diagnose``, pure;
* :mod:`.measure`: the Django shell that opens connections and times them;
* :mod:`.render`: ``render(report) -> str``.
"""

from __future__ import annotations

from lagscope.dbcheck.model import AliasFinding, AliasResult, AliasSettings, DbReport, Samples
from lagscope.dbcheck.rules import findings_for

__all__ = [
    "AliasFinding",
    "AliasResult",
    "AliasSettings",
    "DbReport",
    "Samples",
    "findings_for",
]

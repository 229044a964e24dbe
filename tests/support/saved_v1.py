"""Saved files in the first version of their kind (``lagscope.probe/1``, ``lagscope.report/1``),
made from a current one: the request records one object each, as runs saved them before the
columns (:func:`lagscope.probe.model.table_from_records`). The loader must keep reading such
files, so the tests write them."""

from __future__ import annotations

import copy
from typing import Any

from lagscope.probe.model import TABLE_CODED, TABLE_PLAIN

__all__ = ["as_v1", "records_as_v1"]


def records_as_v1(table: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of a table as ``/1`` wrote them, one object per request."""
    columns, values = table["columns"], table["values"]
    durs = iter(columns["server_timing_dur_ms"])
    out: list[dict[str, Any]] = []
    for i in range(table["count"]):
        record: dict[str, Any] = {name: columns[name][i] for name, _ in TABLE_PLAIN}
        for field in TABLE_CODED:
            record[field] = copy.deepcopy(values[field][columns[field][i]])
        record["server_timing"] = [{**m, "dur_ms": next(durs)} for m in record["server_timing"]]
        if not record["dropped_server_timing"]:
            del record["dropped_server_timing"]  # absent when nothing was dropped
        out.append(record)
    return out


def as_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A ``lagscope.probe/2`` or ``lagscope.report/2`` document in its ``/1`` form."""
    old = copy.deepcopy(data)
    kind, _, version = old["schema"].partition("/")
    assert version == "2", old["schema"]
    old["schema"] = f"{kind}/1"
    if kind == "lagscope.probe":
        for series in old["series"]:
            series["requests"] = records_as_v1(series["requests"])
    else:
        old["requests"] = records_as_v1(old["requests"])
    return old

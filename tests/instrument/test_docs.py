"""docs/server-timing.md derives from the code: the settings table, metric names, check ids."""

from __future__ import annotations

import re
from pathlib import Path

from lagscope.instrument import record

DOC = Path(__file__).resolve().parents[2] / "docs" / "server-timing.md"


# The settings table is checked with every other generated table in
# tests/test_settings_table.py.


def test_every_metric_name_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = [
        record.TOTAL,
        record.VIEW,
        record.TPL,
        record.DB,
        record.DBSHAPES,
        record.DBCONN,
        record.DBPOOL,
    ]
    names += [record.CONN, record.QUEUE, record.THREAD]
    for name in names:
        assert f"| `{name}` |" in text, name


def test_every_check_id_is_documented() -> None:
    source = (Path(record.__file__).parents[1] / "django" / "checks.py").read_text("utf-8")
    ids = set(re.findall(r'id="(lagscope\.[EW]\d{3})"', source))
    assert len(ids) == 9
    text = DOC.read_text(encoding="utf-8")
    for check_id in ids:
        assert f"`{check_id}`" in text, check_id

"""The thresholds table and the docs table generated from it."""

from __future__ import annotations

from lagscope.diagnose.thresholds import docs_table


def test_the_docs_thresholds_table_is_generated_from_the_table() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "diagnose.md").read_text(encoding="utf-8")
    start = text.index("<!-- thresholds:start -->\n") + len("<!-- thresholds:start -->\n")
    end = text.index("<!-- thresholds:end -->")
    assert text[start:end] == docs_table()

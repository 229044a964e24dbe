"""Every reason a settings row gives, and every message of lagscope's Django system checks, is
true: one that reports a measurement names docs/performance.md and quotes figures that are
there; anything else is a mechanism or says it is a rule of thumb. (A reason once said
threads=4 gave half the req/s of threads=1; the measurement on the reference app said
otherwise.)"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from lagscope import settings_table

DOCS = Path(__file__).parents[1] / "docs" / "performance.md"

# Every module that declares settings rows (the one settings mechanism).
MODULES = [
    "lagscope.serve.settings",
    "lagscope.probe.options",
    "lagscope.gate",
    "lagscope.nginx.config",
    "lagscope.inject.config",
    "lagscope.instrument.options",
    "lagscope.diagnose.settings",
    "lagscope.diagnose.thresholds",
    "lagscope.demo.runner",
    "lagscope.dbcheck.settings",
]

# Words that report a measurement rather than a mechanism or a published default.
_MEASURED = re.compile(r"\b(?:measured|gave|halved|doubled|tripled)\b|\bserved\s+[\d~]")
# A measured ratio or share quoted as a figure: "1.5-2.3x the req/s", "8 % of".
_FIGURE = re.compile(
    r"\d+(?:\.\d+)?(?:[-–]\d+(?:\.\d+)?)?\s*(?:x|×)\s+the\b"
    r"|\d+(?:\.\d+)?\s*%\s+(?:of|more|less|fewer)\b"
)


def _reasons() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if not (
                isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == name
            ):
                continue
            try:
                rows = settings_table.rows(obj)
            except (TypeError, KeyError):  # a dataclass that is not a settings table
                continue
            out += [(f"{obj.__name__}.{r.name}", r.spec.why) for r in rows if r.spec.why]
    return out


REASONS = _reasons()


def test_the_tables_were_found() -> None:
    names = {n for n, _ in REASONS}
    assert {"ServeConfig.threads", "ServeConfig.workers", "ProxySettings.chunk_bytes"} <= names


def _norm(text: str) -> str:
    return text.replace("–", "-").replace("×", "x").replace(" ", "")


@pytest.mark.parametrize(("row", "why"), REASONS, ids=[n for n, _ in REASONS])
def test_a_measured_reason_names_where_it_was_measured(row: str, why: str) -> None:
    if _MEASURED.search(why) or _FIGURE.search(why):
        assert "docs/performance.md" in why or "rule of thumb" in why, why
    if "docs/performance.md" in why:
        docs = _norm(DOCS.read_text(encoding="utf-8"))
        for figure in _FIGURE.findall(why):
            low = re.split(r"[-–x×% ]", figure)[0]
            assert _norm(low) in docs, (row, figure)


def _check_messages() -> list[tuple[str, str]]:
    """The text of every message and hint of lagscope.django.checks (the string parts of
    each ``Warning(...)``/``Error(...)``/``Info(...)``), read from the source."""
    from lagscope.django import checks

    tree = ast.parse(Path(checks.__file__).read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in ("Warning", "Error", "Info", "Critical", "Debug"):
            continue
        check_id = next(
            (
                k.value.value
                for k in node.keywords
                if k.arg == "id" and isinstance(k.value, ast.Constant)
            ),
            "?",
        )
        for part in [*node.args[:1], *(k.value for k in node.keywords if k.arg == "hint")]:
            text = "".join(
                c.value
                for c in ast.walk(part)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
            out.append((str(check_id), text))
    return out


MESSAGES = _check_messages()


def test_the_check_messages_were_found() -> None:
    assert {"lagscope.W001", "lagscope.W002"} <= {i for i, _ in MESSAGES}


@pytest.mark.parametrize(("check_id", "text"), MESSAGES, ids=[i for i, _ in MESSAGES])
def test_a_measured_check_message_names_where_it_was_measured(check_id: str, text: str) -> None:
    # Lower-cased: a hint may open a sentence with "Measured:".
    test_a_measured_reason_names_where_it_was_measured(check_id, text.lower())

"""No rule module holds a threshold of its own: every number a rule decides with is a row of
``lagscope.diagnose.thresholds`` (with its reason), read from the ``Thresholds`` it is given.
The pure modules the rules read through (evidence, budget, profiling) are held to the same.

Read from the source (AST). What a rule may still write as a bare number: 0, 1 and 2 (empty,
one, "two points to compare"), the digits of ``round(x, 3)``, a unit conversion by 1000, and
a module-level UPPER_CASE constant (a structural one, named, with its comment).
"""

from __future__ import annotations

import ast
from pathlib import Path

from lagscope.diagnose.thresholds import Thresholds
from lagscope.settings_table import rows

DIAGNOSE = Path(__file__).resolve().parents[3] / "src" / "lagscope" / "diagnose"
RULES = DIAGNOSE / "rules"
PURE = [DIAGNOSE / name for name in ("evidence.py", "budget.py", "profiling.py")]

_STRUCTURAL = {0, 1, 2}
_UNIT = 1000  # ms <-> s, bytes -> KB


def _bare_numbers(source: str, name: str) -> list[str]:
    tree = ast.parse(source, name)
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "round" and len(node.args) == 2:
                allowed.add(id(node.args[1]))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Mult)):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value == _UNIT:
                    allowed.add(id(side))
    for statement in tree.body:  # module level: a named constant
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            if names and all(n.lstrip("_").isupper() for n in names):
                allowed.update(id(n) for n in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and type(node.value) in (int, float)
            and node.value not in _STRUCTURAL
            and id(node) not in allowed
        ):
            found.append(f"{name}:{node.lineno}: {node.value!r}")
    return found


def test_no_rule_module_decides_with_a_bare_number() -> None:
    modules = [*sorted(RULES.glob("*.py")), *PURE]
    assert len(modules) > 10 and all(p.is_file() for p in PURE)
    found = [hit for path in modules for hit in _bare_numbers(path.read_text("utf-8"), path.name)]
    assert not found, f"thresholds outside the table (make them Thresholds rows): {found}"


def test_the_scan_sees_a_bare_threshold_and_lets_structure_pass() -> None:
    source = (
        "QUARTERS = 4\n"
        "def rule(ev, t):\n"
        "    if len(ev.levels) < 2 or ev.n < QUARTERS:\n"
        "        return round(ev.ms / 1000, 3)\n"
        "    return ev.absorbed >= 0.5 * ev.wait_ms or ev.count > 3\n"
    )
    assert sorted(_bare_numbers(source, "x.py")) == ["x.py:5: 0.5", "x.py:5: 3"]


def test_every_threshold_gives_its_reason() -> None:
    missing = [r.name for r in rows(Thresholds) if not r.spec.why.strip()]
    assert not missing, f"thresholds without a reason: {missing}"

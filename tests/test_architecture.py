"""docs/architecture.md's module table names every module, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lagscope"
_ROW = re.compile(r"^\| (`lagscope[^|]*) \|")
_NAME = re.compile(r"`([A-Za-z_][\w.]*)`")
# Not modules a reader needs a row for: entry points and generated migrations.
_SKIP = re.compile(r"(\.__main__|\.__init__|\.migrations(\..*)?)$")


def _modules() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        dotted = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if not _SKIP.search(dotted):
            found.add(dotted)
    return found


def _packages() -> set[str]:
    return {
        ".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")
    }


def _documented() -> set[str]:
    names: set[str] = set()
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        tokens = _NAME.findall(m.group(1))
        head = tokens[0]
        names.add(head)
        for short in tokens[1:]:
            # "`lagscope.x.a` / `b`" names a sibling; "`lagscope.x` (`a`, `b`)" children.
            names.add(f"{head.rsplit('.', 1)[0]}.{short}")
            names.add(f"{head}.{short}")
    return names


def test_every_module_has_a_row() -> None:
    missing = sorted(_modules() - _documented())
    assert not missing, f"docs/architecture.md has no row for: {missing}"


def test_every_row_names_a_module() -> None:
    rows = {n for n in _documented() if n.startswith("lagscope")}
    real = _modules() | _packages()
    heads = set()
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            heads.add(_NAME.findall(m.group(1))[0])
    unknown = sorted(h for h in heads if h not in real)
    assert not unknown, f"docs/architecture.md names what does not exist: {unknown}"
    assert rows

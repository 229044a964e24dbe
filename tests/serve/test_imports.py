"""serve's modules import one way: no module imports one that (directly or not) imports it,
function-level imports included, so following ``config`` through serve visits each file
once."""

from __future__ import annotations

import ast
from pathlib import Path

SERVE = Path(__file__).resolve().parents[2] / "src" / "lagscope" / "serve"


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SERVE.glob("*.py"):
        if path.stem == "__init__":
            continue
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["lagscope", "serve"] and len(parts) == 3:
                    found.add(parts[2])
        graph[path.stem] = found
    return graph


def test_serve_imports_have_no_cycle() -> None:
    graph = _imports()
    assert "workers" in graph and "server" in graph["workers"]
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_the_worker_and_granian_sides_never_import_the_launcher() -> None:
    graph = _imports()
    for module in ("workers", "server", "granian_entry", "app", "settings"):
        assert "launcher" not in graph[module], module

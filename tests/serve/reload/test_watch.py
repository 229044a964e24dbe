"""What the reload watcher reacts to (the rule, pure) and the watcher on real files."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lagscope.serve.reload.watch import Roots, Watcher, changed_paths, wanted

ROOTS = Roots(code=("/proj",), templates=("/tpl",))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/proj/app/views.py", True),
        ("/proj/settings.py", True),
        ("/proj/app/templates/app/page.html", True),
        ("/tpl/base.html", True),
        ("/tpl/deep/x.txt", True),
        ("/proj/README.md", False),
        ("/proj/app/__pycache__/views.cpython-311.pyc", False),
        ("/proj/.git/HEAD", False),
        ("/proj/.venv/lib/python3.11/site-packages/django/__init__.py", False),
        ("/proj/node_modules/x/index.py", False),
        ("/proj/app/.#views.py", False),
        ("/proj/app/views.py~", False),
        ("/proj/app/.views.py.swp", False),
        ("/elsewhere/views.py", False),
    ],
)
def test_wanted(path: str, expected: bool) -> None:
    assert wanted(path, ROOTS) is expected


def test_a_directory_holding_pyvenv_cfg_is_ignored() -> None:
    assert not wanted("/proj/env/lib/x.py", ROOTS, is_venv=lambda d: d == "/proj/env")
    assert wanted("/proj/envs.py", ROOTS, is_venv=lambda d: d == "/proj/env")


def test_changed_paths() -> None:
    before = {"a": (1, 1), "b": (1, 1), "c": (1, 1)}
    after = {"a": (1, 1), "b": (2, 1), "d": (1, 1)}
    assert changed_paths(before, after) == ["b", "c", "d"]


@pytest.mark.parametrize("poll", [False, True])
def test_watcher_reports_an_edit_and_ignores_pycache(tmp_path: Path, poll: bool) -> None:
    (tmp_path / "views.py").write_text("A = 1\n")
    (tmp_path / "__pycache__").mkdir()
    seen: list[list[str]] = []
    got = threading.Event()

    def on_change(paths: list[str]) -> None:
        seen.append(paths)
        got.set()

    watcher = Watcher(Roots((str(tmp_path),)), on_change, poll=poll)
    watcher.start()
    try:
        (tmp_path / "__pycache__" / "views.cpython-311.pyc").write_bytes(b"x")
        (tmp_path / "notes.md").write_text("x")
        (tmp_path / "views.py").write_text("A = 2\n")
        assert got.wait(20)
    finally:
        watcher.stop()
    assert seen[0] == [str(tmp_path / "views.py")]

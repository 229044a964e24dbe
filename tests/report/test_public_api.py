"""The report package's public API: every name in ``__all__`` exists, and the renderers
have the ``render(report) -> str`` shape the rest of lagscope uses."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "lagscope.report.charts",
    "lagscope.report.view",
    "lagscope.report.html",
    "lagscope.report.har",
    "lagscope.report.load",
    "lagscope.report.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_the_module_says_what_it_owns(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.strip()) > 40
    assert sorted(set(module.__all__)) == sorted(module.__all__)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"


@pytest.mark.parametrize("name", ["lagscope.report.html", "lagscope.report.har"])
def test_renderers_are_render_report_to_str(name: str) -> None:
    module = importlib.import_module(name)
    signature = inspect.signature(module.render)
    assert list(signature.parameters) == ["report"]
    assert signature.return_annotation in ("str", str)

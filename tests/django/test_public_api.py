"""Every name a lagscope instrumentation module exports exists; the documented entry
points are where the README says."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "lagscope.instrument",
    "lagscope.instrument.record",
    "lagscope.instrument.options",
    "lagscope.instrument.connections",
    "lagscope.instrument.disclosure",
    "lagscope.instrument.request_start",
    "lagscope.django",
    "lagscope.django.apps",
    "lagscope.django.checks",
    "lagscope.django.conf",
    "lagscope.django.db",
    "lagscope.django.middleware",
    "lagscope.instrument.request_entry",
    "lagscope.instrument.servertiming",
    "lagscope.instrument.wsgi",
    "lagscope.wsgi",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} needs a docstring saying what it owns"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_documented_entry_points() -> None:
    from django.apps import apps

    from lagscope.django.middleware import ServerTimingMiddleware as DjangoMiddleware
    from lagscope.instrument.wsgi import WsgiServerTimingMiddleware as WsgiMiddleware
    from lagscope.wsgi import ServerTimingMiddleware as ReadmePath

    assert apps.get_app_config("lagscope").name == "lagscope.django"
    assert DjangoMiddleware.sync_capable and DjangoMiddleware.async_capable
    assert callable(WsgiMiddleware)
    assert ReadmePath is WsgiMiddleware

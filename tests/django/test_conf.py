"""settings.LAGSCOPE is read on each access: override_settings and pytest-django's
``settings`` fixture take effect at once, and a missing setting means the defaults."""

from __future__ import annotations

from typing import Any

from django.test import override_settings

from lagscope.django.conf import get_options
from lagscope.instrument import InstrumentOptions


def test_missing_setting_means_defaults_and_overrides_apply() -> None:
    assert get_options() == InstrumentOptions()
    with override_settings(LAGSCOPE={"UNTRUSTED": "total"}):
        assert get_options().untrusted == "total"
        with override_settings(LAGSCOPE={"UNTRUSTED": "none", "SECRET": "x"}):
            assert (get_options().untrusted, get_options().secret) == ("none", "x")
        assert get_options().untrusted == "total"
    # Back to the suite's settings, which have no LAGSCOPE.
    assert get_options() == InstrumentOptions()
    with override_settings(LAGSCOPE=None):
        assert get_options() == InstrumentOptions()


def test_pytest_django_settings_fixture(settings: Any) -> None:
    assert get_options().enabled is True
    settings.LAGSCOPE = {"ENABLED": False}
    assert get_options().enabled is False

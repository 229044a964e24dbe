"""The app config: registers the system checks and the database hooks in ``ready()``."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

__all__ = ["LagscopeConfig"]


class LagscopeConfig(AppConfig):
    name = "lagscope.django"
    label = "lagscope"
    verbose_name = "lagscope"

    def ready(self) -> None:
        from lagscope.django.checks import ALL_CHECKS
        from lagscope.django.db import install

        for check in ALL_CHECKS:
            checks.register(check)
        install()

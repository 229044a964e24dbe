"""Django app config for the reference app."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "lagscope.demo"
    label = "lagscope_demo"
    verbose_name = "lagscope reference app"
    default_auto_field = "django.db.models.BigAutoField"

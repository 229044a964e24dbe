"""Django app config for the reference app."""

from __future__ import annotations

from django.apps import AppConfig


class RefAppConfig(AppConfig):
    name = "lagscope.refapp"
    # The label names the tables (lagscope_demo_item) and the migration records of every
    # existing per-user database, so it keeps the name the app had when those were made.
    label = "lagscope_demo"
    verbose_name = "lagscope reference app"
    default_auto_field = "django.db.models.BigAutoField"

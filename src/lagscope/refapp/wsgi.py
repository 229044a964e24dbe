"""WSGI entry point for the reference app outside ``lagscope serve`` (e.g. gunicorn)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lagscope.refapp.settings")
application = get_wsgi_application()

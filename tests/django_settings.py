"""The pytest-django settings module for the whole suite (DJANGO_SETTINGS_MODULE).

Kept minimal: an SQLite test database, lagscope's app and middleware, and a template loader
that serves the tests' inline templates. Suites that need another database add an alias
at run time (see tests/django/conftest.py) rather than editing this file.
"""

from __future__ import annotations

SECRET_KEY = "lagscope-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
USE_TZ = True
INTERNAL_IPS: list[str] = []

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "lagscope.django",
    # For LagscopePanel's tests; without its middleware and URLs the toolbar stays inert.
    "debug_toolbar",
]

MIDDLEWARE = [
    "lagscope.django.middleware.ServerTimingMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "django_test_urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }
}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": False,
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {"lagscope_test.html": "{% for i in items %}<p>{{ i }}</p>{% endfor %}"},
                ),
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }
]

# The toolbar's panel list, read at start-up by its app (only lagscope's panel is tested).
DEBUG_TOOLBAR_PANELS = ["lagscope.contrib.debug_toolbar.LagscopePanel"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

"""A throwaway Django project on disk for the reload tests: edited, broken and fixed by the
tests as a developer would (files rewritten in place)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["views", "write_file", "write_project"]

SETTINGS = """
import os
SECRET_KEY = "reload-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "site_urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "lagscope.django"]
MIDDLEWARE = [
    "lagscope.django.middleware.ServerTimingMiddleware",
    "django.middleware.common.CommonMiddleware",
]
LAGSCOPE = {"TRUST_LOOPBACK": True}
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.path.join(os.path.dirname(__file__), "db.sqlite3")}}
if os.environ.get("SITE_DATABASE"):  # PostgreSQL, for the tests that count connects
    import json
    DATABASES = {"default": json.loads(os.environ["SITE_DATABASE"])}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "DIRS": [os.path.join(os.path.dirname(__file__), "tpl")], "APP_DIRS": False}]
USE_TZ = True
"""

URLS = """
from django.urls import path
import views
urlpatterns = [
    path("version/", views.version),
    path("page/", views.page),
    path("slow/", views.slow),
    path("peer/", views.peer),
    path("extra/", views.extra),
    path("query/", views.query),
    path("echo/", views.echo),
]
"""

VIEWS = """
import os, time
import helper
from django.http import HttpResponse
from django.shortcuts import render
VERSION = "{version}"
{extra}
def version(request):
    return HttpResponse(VERSION + " " + str(os.getpid()))
def page(request):
    return render(request, "page.html", {{"v": VERSION}})
def slow(request):
    if "mark" in request.GET:  # the test waits for this file: the request has started
        open(os.path.join(os.path.dirname(__file__), "slow-" + request.GET["mark"]), "w").close()
    if "until" in request.GET:  # held until the test writes this file (bounded)
        release = os.path.join(os.path.dirname(__file__), request.GET["until"])
        for _ in range(600):
            if os.path.exists(release):
                break
            time.sleep(0.1)
    else:
        time.sleep(float(request.GET.get("s", "1")))
    return HttpResponse("slow " + VERSION + " " + str(os.getpid()))
def peer(request):
    m = request.META
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "HTTP_X_FORWARDED_FOR")
    return HttpResponse(" ".join(str(m.get(k)) for k in keys))
def extra(request):
    return HttpResponse(helper.TEXT)
from django.views.decorators.csrf import csrf_exempt
@csrf_exempt
def echo(request):
    return HttpResponse(request.body[::-1])
def query(request):
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse(VERSION + " " + str(os.getpid()))
"""


MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def views(version: str, extra: str = "") -> str:
    """views.py at ``version``; ``extra`` is code placed after the imports."""
    return VIEWS.format(version=version, extra=extra)


def write_file(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time visibly later than the previous one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    if path.stat().st_mtime_ns <= before:
        later = before + 10_000_000
        os.utime(path, ns=(later, later))


def write_project(root: Path, version: str = "v1") -> Path:
    (root / "tpl").mkdir(parents=True, exist_ok=True)
    write_file(root / "site_settings.py", SETTINGS)
    write_file(root / "site_urls.py", URLS)
    write_file(root / "views.py", views(version))
    write_file(root / "tpl" / "page.html", "<p>page {{ v }} one</p>\n")
    write_file(root / "helper.py", 'TEXT = "helper one"\n')
    write_file(root / "manage.py", MANAGE)
    return root

"""docs/django.md's OTLP example runs: a Django project served by ``lagscope serve`` with the
example as its wsgi.py sends lagscope's spans and the connect histogram to a loopback OTLP
receiver (protobuf over HTTP, as a collector receives it)."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lagscope.serve.process import ServeProcess

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "otlp_wsgi.py"
DOC = Path(__file__).resolve().parents[2] / "docs" / "django.md"

SETTINGS = """
import json, os
SECRET_KEY = "otlp-example-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["lagscope.django"]
MIDDLEWARE = [
    "lagscope.django.middleware.ServerTimingMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "proj_urls"
DATABASES = json.loads(os.environ["PROJ_DATABASES"])
"""

URLS = """
from django.db import connection
from django.http import HttpResponse
from django.urls import path

def view(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("SELECT 2")
    return HttpResponse("ok")

urlpatterns = [path("", view)]
"""


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.received.append((self.path, self.headers.get("Content-Type") or "", body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_docs_show_the_example_file() -> None:
    body = EXAMPLE.read_text(encoding="utf-8").split("from __future__ import annotations\n\n", 1)[1]
    assert body in DOC.read_text(encoding="utf-8")


def test_the_otlp_example_exports_lagscope_figures(
    tmp_path: Path, receiver: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    endpoint, received = receiver
    (tmp_path / "proj_settings.py").write_text(textwrap.dedent(SETTINGS), encoding="utf-8")
    (tmp_path / "proj_urls.py").write_text(textwrap.dedent(URLS), encoding="utf-8")
    shutil.copy(EXAMPLE, tmp_path / "wsgi.py")
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}
    }
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "proj_settings",
        "PROJ_DATABASES": json.dumps(databases),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }
    # --no-prewarm: the first request opens the thread's connection, so there is a connect.
    with ServeProcess(
        ["wsgi:application", "--port", "0", "--threads", "1", "--no-prewarm"],
        env=env,
        cwd=str(tmp_path),
    ) as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            for _ in range(2):
                conn.request("GET", "/")
                response = conn.getresponse()
                assert response.read() == b"ok"
        finally:
            conn.close()
        # A graceful stop ends the interpreter normally: the SDK flushes at exit.
        assert served.stop() == 0, served.output
    traces = b"".join(body for path, _, body in received if path == "/v1/traces")
    metrics = b"".join(body for path, _, body in received if path == "/v1/metrics")
    assert all(ctype == "application/x-protobuf" for _, ctype, _ in received)
    # Protobuf keeps strings as bytes: names and keys can be found without decoding.
    for needle in (b"lagscope", b"lagscope.db.query_count", b"lagscope.db.connect", b"shop"):
        assert needle in traces, needle
    assert b"db.client.connection.create_time" in metrics

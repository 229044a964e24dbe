"""A WSGI page with ten static assets (3 stylesheets, 3 scripts, 4 images) for browser tests.

Every response has Content-Length, so waitress keeps connections alive as a careful server
does; the assets are tiny, so what a load costs is connections, not bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

ASSETS = (
    *(f"/static/site{i}.css" for i in (1, 2, 3)),
    *(f"/static/app{i}.js" for i in (1, 2, 3)),
    *(f"/static/img{i}.svg" for i in (1, 2, 3, 4)),
)

_TYPES = {"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}


def _body(path: str) -> bytes:
    kind = path.rsplit(".", 1)[-1]
    if kind == "css":
        return f"/* {path} */ body {{ margin: 1rem; }}\n".encode()
    if kind == "js":
        return f"/* {path} */ window.loaded = (window.loaded || 0) + 1;\n".encode()
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
        b'<rect width="8" height="8" fill="#36c"/></svg>'
    )


def page_html() -> bytes:
    links = "".join(f'<link rel="stylesheet" href="{a}">' for a in ASSETS if a.endswith(".css"))
    scripts = "".join(f'<script src="{a}"></script>' for a in ASSETS if a.endswith(".js"))
    images = "".join(f'<img src="{a}" alt="">' for a in ASSETS if a.endswith(".svg"))
    return (
        f"<!DOCTYPE html><html><head><title>ten assets</title>{links}{scripts}</head>"
        f"<body><h1>Ten assets</h1>{images}</body></html>"
    ).encode()


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def site_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        body, ctype = page_html(), "text/html; charset=utf-8"
        # A fixed claim, longer than a reused request takes on an idle machine: diagnose
        # drops it there as impossible, so only some responses keep the app's time, a mix
        # connection-setup-tax must still judge right.
        extra = [("Server-Timing", "app;dur=1.5")]
    elif path in ASSETS:
        body, ctype = _body(path), _TYPES[path.rsplit(".", 1)[-1]]
        extra = [("Cache-Control", "max-age=60")]
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"not found"]
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
    start_response("200 OK", headers)
    return [body]

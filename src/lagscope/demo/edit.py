"""The demo's "first page after a code edit" row: edit a file the version serves, let the
version pick it up as its users must, and time the first page on the client's connection.

Each version renders its page from an editable copy of the reference app's template, in
the demo's temporary directory (:func:`editable_templates`; the app finds it first through
``LAGSCOPE_DEMO_TEMPLATES``): nothing inside the installed package is ever edited.
:func:`measure_edit` loads the page twice on one keep-alive connection through the tax
(the second is the warm figure), changes the page's heading as a developer would
(:func:`edit_template`), calls ``apply`` (the runner restarts "before" and "hand-tuned",
as a user must; ``serve --reload`` switches by itself and ``apply`` waits for its line),
then loads the page again on the same connection. A connection the restart closed fails
that request; the page is then fetched on a new connection, as a browser retries, and
pays what a new connection costs. The clock is a parameter.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from lagscope.demo.model import HTML_PAGE, EditFigures

__all__ = ["EDITED_HEADING", "TEMPLATE", "edit_template", "editable_templates", "measure_edit"]

TEMPLATE = "lagscope_demo/items.html"
_HEADING = "<h1>Items</h1>"
EDITED_HEADING = "<h1>Items (edited)</h1>"

Clock = Callable[[], float]


def editable_templates(workdir: Path, name: str) -> Path:
    """A template directory for version ``name`` holding a copy of the page's template."""
    root = workdir / f"templates-{name}"
    target = root / TEMPLATE
    target.parent.mkdir(parents=True, exist_ok=True)
    source = resources.files("lagscope.refapp") / "templates" / TEMPLATE
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def edit_template(root: Path) -> None:
    """Change the page's heading (what the new page shows: :data:`EDITED_HEADING`)."""
    path = root / TEMPLATE
    text = path.read_text(encoding="utf-8")
    if _HEADING not in text:
        raise ValueError(f"{path} has no {_HEADING}")
    path.write_text(text.replace(_HEADING, EDITED_HEADING, 1), encoding="utf-8")


def _get(conn: http.client.HTTPConnection) -> tuple[int, str]:
    conn.request("GET", HTML_PAGE)
    resp = conn.getresponse()
    return resp.status, resp.read().decode("utf-8", "replace")


def measure_edit(
    connect: Callable[[], http.client.HTTPConnection],
    root: Path,
    apply: Callable[[], None],
    how: str,
    clock: Clock,
) -> EditFigures:
    """See the module. ``connect`` opens a keep-alive connection to the version (through
    the tax); ``apply`` returns once the new code can answer."""
    conn = connect()
    try:
        _get(conn)  # the connection's first page pays its setup
        started = clock()
        _get(conn)
        warm_ms = (clock() - started) * 1000
        edited = clock()
        edit_template(root)
        apply()
        ready_ms = (clock() - edited) * 1000
        started = clock()
        new_connections = 0
        try:
            status, body = _get(conn)
        except (OSError, http.client.HTTPException):
            conn.close()  # the restart closed it: a browser retries on a new one
            conn = connect()
            new_connections = 1
            status, body = _get(conn)
        first_ms = (clock() - started) * 1000
    finally:
        conn.close()
    return EditFigures(
        how=how,
        ready_ms=round(ready_ms, 1),
        warm_ms=round(warm_ms, 1),
        first_ms=round(first_ms, 1),
        new_connections=new_connections,
        new_code=status == 200 and EDITED_HEADING in body,
    )

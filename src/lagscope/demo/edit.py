"""The demo's "first page after a code edit" row: edit a file the version serves, let the
version pick it up as its users must, and time the first page on the client's connection.

Each version renders its page from an editable copy of the reference app's template, in
the demo's temporary directory (:func:`editable_templates`; the app finds it first through
``LAGSCOPE_DEMO_TEMPLATES``): nothing inside the installed package is ever edited.
:class:`EditProbe` loads the page twice on one keep-alive connection through the tax
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

__all__ = [
    "EDITED_HEADING",
    "TEMPLATE",
    "EditProbe",
    "edit_template",
    "editable_templates",
]

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


class EditProbe:
    """One version's edit, in the steps the runner interleaves across versions:
    :meth:`warm` (the page twice on one keep-alive connection), :meth:`edit`, then
    :meth:`ready` once the new code can answer (the versions' restarts and reload run side
    by side), :meth:`first` (the page again on the same connection, one version at a
    time). ``connect`` opens a keep-alive connection to the version (through the tax)."""

    def __init__(
        self,
        connect: Callable[[], http.client.HTTPConnection],
        root: Path,
        how: str,
        clock: Clock,
    ) -> None:
        self.connect = connect
        self.root = root
        self.how = how
        self.clock = clock
        self.conn: http.client.HTTPConnection | None = None
        self.warm_ms = 0.0
        self.ready_ms = 0.0
        self.edited_s = 0.0

    def __repr__(self) -> str:
        return f"<EditProbe {self.root.name} {self.how}>"

    def warm(self) -> None:
        self.conn = self.connect()
        _get(self.conn)  # the connection's first page pays its setup
        started = self.clock()
        _get(self.conn)
        self.warm_ms = (self.clock() - started) * 1000

    def edit(self) -> None:
        self.edited_s = self.clock()
        edit_template(self.root)

    def ready(self, at_s: float) -> None:
        """The new code could answer from ``at_s`` (the clock's seconds) on."""
        self.ready_ms = max(0.0, at_s - self.edited_s) * 1000

    def first(self) -> EditFigures:
        conn = self.conn
        assert conn is not None, "warm() first"
        started = self.clock()
        new_connections = 0
        try:
            status, body = _get(conn)
        except (OSError, http.client.HTTPException):
            conn.close()  # the restart closed it: a browser retries on a new one
            conn = self.conn = self.connect()
            new_connections = 1
            status, body = _get(conn)
        first_ms = (self.clock() - started) * 1000
        return EditFigures(
            how=self.how,
            ready_ms=round(self.ready_ms, 1),
            warm_ms=round(self.warm_ms, 1),
            first_ms=round(first_ms, 1),
            new_connections=new_connections,
            new_code=status == 200 and EDITED_HEADING in body,
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

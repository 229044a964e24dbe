"""The demo's HTML page: ``render(report) -> str``. Pure.

One self-contained page: the side-by-side table, the findings and the story (the text
renderer's output), then each version's diagnose report as ``lagscope report`` draws it
(:func:`lagscope.report.html.render`), each in its own sandboxed ``srcdoc`` frame so the
three pages keep their own styles and their own Content-Security-Policy. No scripts, no
requests. Needs the ``report`` extra (jinja2).
"""

from __future__ import annotations

import html

from lagscope.demo.model import DemoReport, VersionResult
from lagscope.demo.render import TextRenderer

__all__ = ["render"]

# Nothing in the outer page loads anything; frames get their documents inline.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'"

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1d1d1f; background: #fff; }
pre { font: 13px/1.4 ui-monospace, monospace; overflow-x: auto; background: #f6f6f8;
      padding: 1rem; border-radius: 6px; }
iframe { width: 100%; height: 85vh; border: 1px solid #ccc; border-radius: 6px; }
@media (prefers-color-scheme: dark) {
  body { color: #e8e8ea; background: #151517; }
  pre { background: #222226; }
}
"""


def _version_section(v: VersionResult) -> str:
    title = f"<h2>{html.escape(v.name)}: {html.escape(v.title)}</h2>"
    if v.diagnose is None:
        why = v.diagnose_error or "diagnose did not run"
        return f"{title}\n<p>No diagnose report ({html.escape(why)}).</p>"
    from lagscope.diagnose.model import from_dict
    from lagscope.report.html import render as render_page

    try:
        diagnosis = from_dict(dict(v.diagnose))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # A saved file's embedded report that diagnose cannot read back: said, not fatal.
        why = " ".join(f"its saved form is not readable: {exc}".split())[:200]
        return f"{title}\n<p>No diagnose report ({html.escape(why)}).</p>"
    page = render_page(diagnosis)
    return (
        f'{title}\n<iframe sandbox title="diagnose report of {html.escape(v.name)}" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
    )


def render(report: DemoReport) -> str:
    """The whole page, as a string."""
    text = TextRenderer().render(report)
    sections = "\n".join(_version_section(v) for v in report.versions)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lagscope demo: before / hand-tuned / lagscope</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>lagscope demo</h1>
<pre>{html.escape(text)}</pre>
{sections}
</body>
</html>
"""

"""Reports people look at and share: a self-contained HTML page and a HAR 1.2 export.

Both are renderers over the saved report models (``lagscope.probe/2`` and, where present,
``lagscope.report/2``): ``html.render(report) -> str`` and ``har.render(report) -> str``.
:mod:`lagscope.report.load` reads either schema back from JSON.
"""

"""Writing a report's HTML page and HAR file: the ``--html`` / ``--har`` step that every
measuring command shares with ``lagscope report``, so the flags behave the same everywhere.

:func:`as_saved` reads a live report back through its saved JSON form first, so the page of
a live run and the page ``lagscope report`` makes from its saved file are the same page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, overload

from lagscope.demo import model as demo_model
from lagscope.diagnose import model as diagnose_model
from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import write_all
from lagscope.probe import model as probe_model
from lagscope.report import har, html
from lagscope.report.load import AnyReport
from lagscope.saved import round_trip

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["as_saved", "files_for", "write_outputs"]


@overload
def as_saved(report: probe_model.ProbeReport) -> probe_model.ProbeReport: ...
@overload
def as_saved(report: diagnose_model.DiagnoseReport) -> diagnose_model.DiagnoseReport: ...
@overload
def as_saved(report: demo_model.DemoReport) -> demo_model.DemoReport: ...
@overload
def as_saved(report: AnyReport) -> AnyReport: ...
def as_saved(report: AnyReport) -> AnyReport:
    """The report as its saved JSON form reads back: the page and the HAR of a live run then
    show exactly the JSON's (rounded) numbers, and equal what ``lagscope report`` gives."""
    if isinstance(report, diagnose_model.DiagnoseReport):
        return round_trip(report, diagnose_model.to_dict, diagnose_model.from_dict)
    if isinstance(report, demo_model.DemoReport):
        return round_trip(report, demo_model.report_to_dict, demo_model.report_from_dict)
    return round_trip(report, probe_model.to_dict, probe_model.from_dict)


def files_for(
    report: AnyReport, html_path: Path | None, har_path: Path | None
) -> list[tuple[Path, Callable[[], str]]]:
    """The HTML page and/or HAR file of ``report`` as ``(path, text)`` for
    :func:`lagscope.fileio.write_all`; each text is made when its file is written."""
    if html_path is None and har_path is None:
        return []
    saved = functools.cache(lambda: as_saved(report))
    if isinstance(report, demo_model.DemoReport):
        if har_path is not None or html_path is None:
            raise LagscopeError(
                "options",
                "--har: a lagscope.demo/1 file holds no requests in HAR form; "
                "give -o FILE.html (its versions' diagnose pages are inside)",
                ExitCode.USAGE,
            )

        def demo_page() -> str:
            from lagscope.demo.html import render as render_demo

            return render_demo(saved())  # type: ignore[arg-type]

        return [(html_path, demo_page)]
    files: list[tuple[Path, Callable[[], str]]] = []
    if html_path is not None:
        files.append((html_path, lambda: html.render(saved())))  # type: ignore[arg-type]
    if har_path is not None:
        files.append((har_path, lambda: har.render(saved())))  # type: ignore[arg-type]
    return files


def write_outputs(report: AnyReport, html_path: Path | None, har_path: Path | None) -> None:
    """Write the HTML page and/or the HAR file of ``report``, each atomically; when one
    fails the other is still written, and the first failure is raised."""
    failed = write_all(files_for(report, html_path, har_path))
    if failed:
        raise failed[0][1]

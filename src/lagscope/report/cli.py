"""``lagscope report SAVED.json``: render a saved run as HTML and/or HAR, atomically written.

It also owns :func:`write_outputs`, the ``--html`` / ``--har`` step every measuring command
shares, so the flags behave the same on ``probe`` and ``report``.
"""

from __future__ import annotations

from pathlib import Path

import click

from lagscope.diagnose import model as diagnose_model
from lagscope.diagnose.model import DiagnoseReport
from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import write_text_atomic
from lagscope.outputs import FILE_PATH
from lagscope.probe import model as probe_model
from lagscope.report import har, html
from lagscope.report.load import AnyReport, read_report
from lagscope.saved import round_trip

__all__ = ["as_saved", "report", "write_outputs"]


def as_saved(report: AnyReport) -> AnyReport:
    """The report as its saved JSON form reads back: the page and the HAR of a live run then
    show exactly the JSON's (rounded) numbers, and equal what ``lagscope report`` gives."""
    if isinstance(report, DiagnoseReport):
        return round_trip(report, diagnose_model.to_dict, diagnose_model.from_dict)
    return round_trip(report, probe_model.to_dict, probe_model.from_dict)


def write_outputs(report: AnyReport, html_path: Path | None, har_path: Path | None) -> None:
    """Write the HTML page and/or the HAR file of ``report``; each atomically."""
    if html_path is not None or har_path is not None:
        report = as_saved(report)
    if html_path is not None:
        write_text_atomic(html_path, html.render(report))
    if har_path is not None:
        write_text_atomic(har_path, har.render(report))


@click.command()
@click.argument("saved", type=FILE_PATH)
@click.option(
    "-o", "--output", type=FILE_PATH, help="Write the self-contained HTML report to this file."
)
@click.option("--har", "har_path", type=FILE_PATH, help="Write the requests as a HAR 1.2 file.")
def report(saved: Path, output: Path | None, har_path: Path | None) -> None:
    """Render a saved run (lagscope.probe/1 from probe -o, or lagscope.report/1 from
    diagnose -o) as an HTML report and/or a HAR 1.2 file.

    Exit codes: 0 ok, 2 bad input (unreadable file, unknown schema), 8 output not writable
    or the report extra missing.
    """
    if output is None and har_path is None:
        raise LagscopeError("options", "give -o FILE.html and/or --har FILE.har", ExitCode.USAGE)
    write_outputs(read_report(saved), output, har_path)

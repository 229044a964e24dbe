"""``lagscope report SAVED.json``: render a saved run as HTML and/or HAR, atomically written.

Any saved file: ``lagscope.probe/2`` (probe -o), ``lagscope.report/2`` (diagnose -o) and
``lagscope.demo/1`` (demo --json -o; HTML only), read by :mod:`lagscope.report.load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from lagscope.errors import ExitCode, LagscopeError
from lagscope.outputs import FILE_PATH

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["report"]


@click.command()
@click.argument("saved", type=FILE_PATH)
@click.option(
    "-o", "--output", type=FILE_PATH, help="Write the self-contained HTML report to this file."
)
@click.option("--har", "har_path", type=FILE_PATH, help="Write the requests as a HAR 1.2 file.")
def report(saved: Path, output: Path | None, har_path: Path | None) -> None:
    """Render a saved run (lagscope.probe/2 from probe -o, lagscope.report/2 from
    diagnose -o, lagscope.demo/1 from demo --json -o) as an HTML report and/or a HAR 1.2
    file (probe and diagnose runs).

    Exit codes: 0 ok, 2 bad input (unreadable file, unknown schema), 8 output not writable
    or the report extra missing.
    """
    if output is None and har_path is None:
        raise LagscopeError("options", "give -o FILE.html and/or --har FILE.har", ExitCode.USAGE)
    from lagscope.fileio import check_outputs
    from lagscope.report.load import read_report
    from lagscope.report.write import write_outputs

    check_outputs([("-o", output), ("--har", har_path)], [("SAVED", saved)])
    write_outputs(read_report(saved), output, har_path)

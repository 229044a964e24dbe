"""The output flags the measuring commands share, and writing what they ask for.

``probe`` and ``diagnose`` both print a report, save its JSON (``-o``), write an HTML page
and a HAR file, and render a saved report again (``--load``); the flags and the writing
order live here once. Pure declarations plus atomic writes through :mod:`lagscope.fileio`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lagscope.fileio import write_text_atomic

__all__ = ["output_options", "write_requested"]

F = TypeVar("F", bound=Callable[..., object])

_PATH = click.Path(dir_okay=False, path_type=Path)


def output_options(schema: str) -> Callable[[F], F]:
    """``--json``, ``-o/--output``, ``--html``, ``--har`` and ``--load``, in that order."""

    def decorate(func: F) -> F:
        options = [
            click.option("--json", "as_json", is_flag=True, help=f"Print the {schema} JSON."),
            click.option(
                "-o", "--output", type=_PATH, help="Also save the JSON report to this file."
            ),
            click.option(
                "--html",
                "html_path",
                type=_PATH,
                help="Also write a self-contained HTML report to this file "
                "(needs lagscope[report]).",
            ),
            click.option(
                "--har",
                "har_path",
                type=_PATH,
                help="Also write every request as a HAR 1.2 file (credential headers redacted).",
            ),
            click.option(
                "--load", type=_PATH, help="Render a saved JSON report instead of measuring."
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def write_requested(
    report: Any,
    json_text: Callable[[], str],
    output: Path | None,
    html_path: Path | None,
    har_path: Path | None,
) -> None:
    """Save the JSON (``-o``), then the HTML page and the HAR file, each atomically.

    ``json_text`` is called only when ``-o`` asks for the file: a run printed for people
    does not pay for laying out its JSON (~4 ms at 70 requests)."""
    if output is not None:
        write_text_atomic(output, json_text())
    if html_path is not None or har_path is not None:
        from lagscope.report.cli import write_outputs

        write_outputs(report, html_path, har_path)

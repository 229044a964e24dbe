"""The output flags the measuring commands share, and writing and printing what they ask for.

``probe`` and ``diagnose`` both print a report, save its JSON (``-o``), write an HTML page
and a HAR file, and render a saved report again (``--load``); the flags, the URL-or-``--load``
rule, the writing order and the terminal's width and colour live here once. Declarations
plus atomic writes through :mod:`lagscope.fileio`.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lagscope.errors import ExitCode, LagscopeError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "FILE_PATH",
    "Outputs",
    "color_wanted",
    "output_options",
    "show",
    "terminal_width",
    "write_requested",
]

T = TypeVar("T")


# click.Path is generic from click 8.2 on; subscripting it would fail on 8.1, which the
# dependency range allows.
class _FilePath(click.Path):
    """``click.Path(path_type=pathlib.Path)``, with pathlib imported only when a file is
    given: a probe run without one does not pay for loading it (~0.8 ms)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        # Path("") is ".", the current directory: an empty argument (an unset shell
        # variable, say) is a usage error, not a file named "." found after the run.
        if isinstance(value, str) and value == "":
            self.fail("an empty path names no file", param, ctx)
        return super().convert(value, param, ctx)

    def coerce_path_result(self, value: str | os.PathLike[str]) -> Path:
        from pathlib import Path

        return Path(value)


# A file argument of every command (never a directory), given to the command as a Path.
FILE_PATH = _FilePath(dir_okay=False)


@dataclass(frozen=True)
class Outputs:
    """What the output flags asked for (see :func:`output_options`)."""

    as_json: bool
    output: Path | None
    html_path: Path | None
    har_path: Path | None
    load: Path | None

    def check_source(self, url: str | None) -> None:
        """Exactly one of URL and ``--load``: a run measures or renders a saved report; and
        every output writable, none the same file as another or as ``--load``'s, before
        anything is measured (:func:`lagscope.fileio.check_outputs`)."""
        if self.load is not None and url is not None:
            raise LagscopeError("options", "give either URL or --load, not both", ExitCode.USAGE)
        if self.load is None and url is None:
            raise LagscopeError("options", "missing URL (or --load FILE)", ExitCode.USAGE)
        if self.output is not None or self.html_path is not None or self.har_path is not None:
            from lagscope.fileio import check_outputs  # only runs that save load it

            check_outputs(
                [("-o", self.output), ("--html", self.html_path), ("--har", self.har_path)],
                [("--load", self.load)],
            )


def output_options(schema: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``--json``, ``-o/--output``, ``--html``, ``--har`` and ``--load``, in that order; the
    command receives them as one ``outputs: Outputs`` argument."""
    options = [
        click.option("--json", "as_json", is_flag=True, help=f"Print the {schema} JSON."),
        click.option(
            "-o", "--output", type=FILE_PATH, help="Also save the JSON report to this file."
        ),
        click.option(
            "--html",
            "html_path",
            type=FILE_PATH,
            help="Also write a self-contained HTML report to this file (needs lagscope[report]).",
        ),
        click.option(
            "--har",
            "har_path",
            type=FILE_PATH,
            help="Also write every request as a HAR 1.2 file (credential headers redacted).",
        ),
        click.option(
            "--load", type=FILE_PATH, help="Render a saved JSON report instead of measuring."
        ),
    ]

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> T:
            outputs = Outputs(
                as_json=kwargs.pop("as_json"),
                output=kwargs.pop("output"),
                html_path=kwargs.pop("html_path"),
                har_path=kwargs.pop("har_path"),
                load=kwargs.pop("load"),
            )
            return func(*args, outputs=outputs, **kwargs)

        decorated: Callable[..., T] = command
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


def write_requested(
    report: Any, json_text: Callable[[], str], outputs: Outputs
) -> list[LagscopeError]:
    """Save the JSON (``-o``), then the HTML page and the HAR file, each atomically; one
    that fails does not keep the others from being written. The failures, in order.

    ``json_text`` is called only when ``-o`` asks for the file: a run printed for people
    does not pay for laying out its JSON (~4 ms at 70 requests)."""
    if outputs.output is None and outputs.html_path is None and outputs.har_path is None:
        return []
    from lagscope.fileio import write_all  # only runs that save load it
    from lagscope.report.write import files_for

    files = [(outputs.output, json_text)] if outputs.output is not None else []
    failed = write_all(files + files_for(report, outputs.html_path, outputs.har_path))
    return [exc for _, exc in failed]


def color_wanted() -> bool:
    # https://no-color.org: any non-empty NO_COLOR disables colour.
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def terminal_width() -> int:
    """The width a report is laid out for: the terminal's (shutil.get_terminal_size's rule:
    COLUMNS, then the terminal, then 100, without importing shutil and its compression
    modules on every run), kept within 80-140 columns."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(80, min(140, columns if columns > 0 else 100))


def show(
    report: Any,
    json_text: Callable[[], str],
    outputs: Outputs,
    terminal_text: Callable[[bool, int], str],
) -> None:
    """Write what the flags ask for, then print the JSON (``--json``) or the terminal
    report, ``terminal_text(color, width)``. The JSON is laid out once, and only when
    ``-o`` or ``--json`` needs it."""
    json_once = functools.cache(json_text)
    failed = write_requested(report, json_once, outputs)
    if outputs.as_json:
        click.echo(json_once(), nl=False)
    else:
        color = color_wanted()
        click.echo(terminal_text(color, terminal_width()), nl=False, color=color)
    # The measurement is on the terminal and in every file that could be written; the
    # first failure still sets the exit code.
    for exc in failed[1:]:
        click.echo(f"lagscope: {exc.one_line()}", err=True)
    if failed:
        raise failed[0]

"""The ``lagscope diagnose`` command line: flags in, the ladder run, findings out.

Translation only: flags become :class:`DiagnoseOptions`, progress goes to stderr (a
terminal only), the report goes to a renderer, ``-o`` saves the JSON form atomically,
``--load`` renders a saved report again, and the exit code says whether anything at
warning or worse was found (or ``--budget`` was exceeded).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from lagscope.diagnose.settings import DiagnoseSettings
from lagscope.errors import ExitCode, LagscopeError
from lagscope.gate import Gate
from lagscope.outputs import Outputs, output_options, show
from lagscope.probe.flags import request_options
from lagscope.settings_table import build, click_options

if TYPE_CHECKING:
    from pathlib import Path

    from lagscope.diagnose.model import DiagnoseReport

# The ladder, the model, the renderers (rich) are imported when the command runs, not when
# it is defined: `lagscope diagnose --help` needs only the flags (docs/performance.md).


def _ascii_console() -> bool:
    """True when stdout's encoding cannot show box drawing (cp1252 and cp437 consoles,
    output redirected on Windows)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "┏━→–".encode(encoding)
    except (UnicodeError, LookupError):
        return True
    return False


def _progress() -> Any:
    if not sys.stderr.isatty():
        return None

    from lagscope.console import printable

    def say(rung: str, message: str) -> None:
        click.echo(printable(f"  {rung}: {message}"), err=True)

    return say


def _load(path: Path) -> DiagnoseReport:
    from lagscope.diagnose.render import load_json
    from lagscope.saved import load_saved

    return load_saved(path, "report-2.schema.json", load_json)


@click.command()
@click.argument("url", required=False)
@click_options(DiagnoseSettings)
@request_options()
@click_options(Gate)
@output_options("lagscope.report/2")
def diagnose_command(
    url: str | None,
    resolves: tuple[str, ...],
    headers: tuple[str, ...],
    ipv4: bool,
    ipv6: bool,
    insecure: bool,
    cacert: str | None,
    budget_ms: float | None,
    outputs: Outputs,
    **table: Any,
) -> None:
    """Find where the time of URL goes: run the isolation ladder, name each ghost with its
    cost per request and its fix.

    Exit codes: 0 no warning, 1 a warning or worse (or over --budget), 2 bad input,
    3 resolve, 4 connect, 5 timeout, 6 TLS, 7 bad HTTP, 8 local environment, 130 interrupted.
    """
    from lagscope.diagnose.render import JsonRenderer, TerminalRenderer

    settings, _ = build(DiagnoseSettings, table)
    gate, _ = build(Gate, {"budget_ms": budget_ms})
    outputs.check_source(url)
    if outputs.load is not None:
        report = _load(outputs.load)
    else:
        assert url is not None  # check_source
        from lagscope.diagnose import make_options
        from lagscope.diagnose.ladder import diagnose
        from lagscope.diagnose.model import from_dict, to_dict
        from lagscope.saved import round_trip

        opts = make_options(
            url,
            settings,
            resolve=resolves,
            headers=headers,
            ipv4=ipv4,
            ipv6=ipv6,
            verify_tls=not insecure,
            cafile=cacert,
            command=click.get_current_context().find_root().meta.get("lagscope.argv")
            or ("lagscope", *sys.argv[1:]),
        )
        measured = diagnose(opts, progress=_progress())
        # Everything below shows the report as its JSON reads back, so the terminal, the
        # saved file, --load, the HTML page and the HAR all carry the same numbers.
        report = round_trip(measured, to_dict, from_dict)
    show(
        report,
        lambda: JsonRenderer().render(report),
        outputs,
        lambda color, width: TerminalRenderer(
            color=color, width=width, ascii_only=_ascii_console()
        ).render(report),
    )
    over = False
    if gate.budget_ms is not None:
        warm = report.budget("warm")
        if warm is None:
            raise LagscopeError("budget", "no warm requests completed", ExitCode.GATE_FAILED)
        over = warm.total_ms > gate.budget_ms
        if over:
            click.echo(
                f"lagscope: budget: typical warm request {warm.total_ms:.1f} ms > "
                f"{gate.budget_ms:g} ms",
                err=True,
            )
    if report.problems or over:
        sys.exit(int(ExitCode.GATE_FAILED))

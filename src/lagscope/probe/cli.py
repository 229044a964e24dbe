"""The ``lagscope probe`` command line: options in, report out, exit code for gates.

Everything here is translation: click parameters become :class:`ProbeOptions`, the run's
report goes to a renderer, ``--output`` saves JSON atomically, ``--load`` renders a saved
run again, and ``--budget`` turns the warm p50 into an exit code.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from lagscope.errors import ExitCode, LagscopeError
from lagscope.outputs import Outputs, output_options, show
from lagscope.probe.flags import request_options
from lagscope.probe.options import Gate, ProbeOptions, parse_family, parse_header, parse_resolve
from lagscope.probe.options import parse_url as _parse_url
from lagscope.settings_table import build, check_values, click_options

if TYPE_CHECKING:
    from lagscope.probe.model import ProbeReport

# The measuring and rendering modules (h11, sockets, the report model) are imported when the
# command runs, not when it is defined: `lagscope probe --help` and a usage error need only
# the flags (docs/performance.md, start-up).


def _read_body(data: str | None) -> bytes:
    if data is None:
        return b""
    if data.startswith("@"):
        from pathlib import Path  # only a body read from a file needs it

        path = Path(data[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise LagscopeError(
                "options", f"cannot read body file {path}: {exc.strerror or exc}", ExitCode.USAGE
            ) from None
    return data.encode("utf-8")


def _measure(opts: ProbeOptions) -> ProbeReport:
    from lagscope.probe.runner import BodyCapError

    try:
        return _run(opts)
    except BodyCapError as exc:
        # probe, unlike diagnose, lets the user raise the cap.
        raise LagscopeError(exc.phase, f"{exc.message}; raise --max-body", exc.exit_code) from None


def _run(opts: ProbeOptions) -> ProbeReport:
    from lagscope.probe.runner import run_probe

    if not sys.stderr.isatty():
        return run_probe(opts)
    # rich only for a progress bar on a terminal: scripts and CI do not pay for its import.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from lagscope import redact
    from lagscope.console import printable

    err = Console(stderr=True)
    with Progress(
        TextColumn("probing {task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        shown = printable(redact.url(opts.target.url))
        task = bar.add_task(shown, total=opts.cold + opts.warm + (1 if opts.warm else 0))

        def progress(series: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return run_probe(opts, progress=progress)


@click.command()
@click.argument("url", required=False)
@click_options(ProbeOptions)
@click.option("-d", "--data", metavar="TEXT|@FILE", help="Request body, or @file to read it.")
@request_options()
@output_options("lagscope.probe/2")
@click_options(Gate)
def probe(
    url: str | None,
    headers: tuple[str, ...],
    data: str | None,
    ipv4: bool,
    ipv6: bool,
    insecure: bool,
    cacert: str | None,
    resolves: tuple[str, ...],
    outputs: Outputs,
    **table: object,
) -> None:
    """Measure URL cold (each request on a new connection) and warm (one keep-alive
    connection), phase by phase: resolve, connect, tls, send, wait, receive.

    Exit codes: 0 ok, 1 budget exceeded, 2 bad input, 3 resolve, 4 connect, 5 timeout,
    6 TLS, 7 bad HTTP from the server, 8 local environment, 130 interrupted.
    """
    from lagscope.probe.render import JsonRenderer, TerminalRenderer

    gate, _ = build(Gate, {"budget_ms": table.pop("budget_ms")}, phase="options")
    outputs.check_source(url)
    if outputs.load is not None:
        # Ignored when rendering a saved run, but nonsense is still refused.
        check_values(ProbeOptions, table, phase="options")
        from lagscope.probe.render import SCHEMA_FILE, report_from_saved
        from lagscope.saved import load_saved

        report = load_saved(outputs.load, SCHEMA_FILE, report_from_saved)
    else:
        assert url is not None  # check_source
        family = parse_family(ipv4, ipv6)
        opts, _ = build(
            ProbeOptions,
            table,
            phase="options",
            target=_parse_url(url),
            headers=tuple(parse_header(h) for h in headers),
            body=_read_body(data),
            family=family,
            verify_tls=not insecure,
            cafile=cacert,
            resolve=tuple(parse_resolve(r) for r in resolves),
        )
        if gate.budget_ms is not None and opts.warm == 0:
            raise LagscopeError(
                "options", "--budget needs a warm series (--warm > 0)", ExitCode.USAGE
            )
        report = _measure(opts)
        argv = click.get_current_context().find_root().meta.get("lagscope.argv")
        if argv:
            import dataclasses

            from lagscope import redact

            report = dataclasses.replace(report, command_line=redact.command_line(argv))
    show(
        report,
        lambda: JsonRenderer().render(report),
        outputs,
        lambda color, width: TerminalRenderer(color=color, width=width).render(report),
    )
    budget_ms = gate.budget_ms
    if budget_ms is not None:
        warm_series = report.get_series("warm")
        total = warm_series.stats("total") if warm_series else None
        if total is None:
            raise LagscopeError("budget", "no warm requests completed", ExitCode.GATE_FAILED)
        if total.p50_ms > budget_ms:
            raise LagscopeError(
                "budget",
                f"warm p50 {total.p50_ms:.2f} ms exceeds the budget of {budget_ms:g} ms",
                ExitCode.GATE_FAILED,
            )

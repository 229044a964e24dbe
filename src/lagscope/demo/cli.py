"""``lagscope demo``: flags → :class:`~lagscope.demo.runner.DemoOptions`, progress on stderr,
the report on stdout or into ``-o FILE``, ``--load`` to render a saved run again."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import click

from lagscope.console import printable
from lagscope.demo.diag import default_diagnose
from lagscope.demo.model import DemoReport
from lagscope.demo.render import JsonRenderer, TextRenderer, load_json
from lagscope.demo.runner import DemoOptions, run_demo
from lagscope.errors import ExitCode, LagscopeError
from lagscope.fileio import check_outputs, write_all
from lagscope.outputs import FILE_PATH
from lagscope.settings_table import build, check_values, click_options
from lagscope.stopping import interrupt_on_stop

__all__ = ["demo"]


def _progress(line: str) -> None:
    click.echo(printable(f"lagscope demo: {line}"), err=True)


def _emit(report: DemoReport, as_json: bool, output: Path | None, html_path: Path | None) -> None:
    """Write the files asked for, each even when another fails, and print the report when
    no -o takes it or a file could not be written; then the first failure."""
    text = (JsonRenderer() if as_json else TextRenderer()).render(report)
    files: list[tuple[Path, Callable[[], str]]] = []
    if html_path is not None:
        from lagscope.demo.html import render as render_html

        files.append((html_path, lambda: render_html(report)))
    if output is not None:
        files.append((output, lambda: text))
    failed = dict(write_all(files))
    for path, _ in files:
        if path not in failed:
            _progress(f"wrote {path}")
    if output is None or failed:
        click.echo(text, nl=False)
    errors = list(failed.values())
    for exc in errors[1:]:
        _progress(exc.one_line())
    if errors:
        raise errors[0]


def _hold(report: DemoReport, ca: Path | None) -> None:
    click.echo("")
    for v in report.versions:
        click.echo(printable(f"  {v.name:<11} {v.url}/items/   {v.url}/api/items/"))
    if ca is not None:
        click.echo(
            "lagscope's https:// URL carries this run's own CA, which your browser does not "
            "know: it warns once (--no-https: plain HTTP)."
        )
        click.echo(printable(f"this run's CA (curl --cacert, removed at the end): {ca}"))
    click.echo("running; open them in a browser (DevTools shows Server-Timing). Ctrl+C stops all.")
    stop = threading.Event()
    try:
        # Short waits so Ctrl+C is seen promptly on Windows too.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        _progress("stopping every version")


@click.command("demo")
@click_options(DemoOptions)
@click.option("--json", "as_json", is_flag=True, help="Print the lagscope.demo/1 JSON instead.")
@click.option("-o", "--output", type=FILE_PATH, help="Write here.")
@click.option("--html", "html_path", type=FILE_PATH, help="Also write an HTML report.")
@click.option("--load", "load_path", type=FILE_PATH, help="Render a saved --json run.")
def demo(
    as_json: bool,
    output: Path | None,
    html_path: Path | None,
    load_path: Path | None,
    **table: object,
) -> None:
    """The whole story on loopback: the slow stack, diagnose naming the ghost, the
    hand-tuned fix and its warm-up, lagscope's fix without one. Every figure is measured.
    """
    # Checked in --load mode too, where they are not used.
    check_values(DemoOptions, table)
    if html_path is not None and importlib.util.find_spec("jinja2") is None:
        raise LagscopeError(
            "html", "the HTML report needs jinja2 (pip install 'lagscope[report]')", ExitCode.USAGE
        )
    log = table.get("log_path")  # a DemoOptions row, so a string here
    log_path = Path(log) if isinstance(log, str) else None
    check_outputs(
        [("-o", output), ("--html", html_path), ("--log", log_path)], [("--load", load_path)]
    )
    if load_path is not None:
        from lagscope.saved import load_saved

        report = load_saved(load_path, "demo-1.schema.json", load_json)
    else:
        options, _ = build(
            DemoOptions,
            table,
            https_asked=table.get("https") is True,
            edit_asked=table.get("edit") is True,
        )
        diagnose = (
            default_diagnose(
                options.quick,
                options.tax_ms,
                timeout_s=options.diagnose_timeout_s,
                max_time_s=options.diagnose_max_time_s,
            )
            if options.diagnose
            else None
        )

        def hold(r: DemoReport, ca: Path | None) -> None:
            _emit(r, as_json, output, html_path)
            _hold(r, ca)

        # SIGTERM, SIGHUP, SIGBREAK and a console close stop the demo as Ctrl+C does: the
        # cluster, the app servers and the temp dirs are unwound the same way.
        with interrupt_on_stop() as stop:
            try:
                report = run_demo(options, _progress, diagnose, hold=hold if options.keep else None)
            except Exception:
                if stop.requested:  # e.g. a visit's connection reset by the stopping servers
                    raise KeyboardInterrupt from None
                raise
        if options.keep:
            return
    _emit(report, as_json, output, html_path)

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


def _hold(report: DemoReport) -> None:
    click.echo("")
    for v in report.versions:
        click.echo(printable(f"  {v.name:<11} {v.url}/items/   {v.url}/api/items/"))
    click.echo("running; open them in a browser (DevTools shows Server-Timing). Ctrl+C stops all.")
    if report.https:
        click.echo(
            "lagscope's https:// URL carries this run's own CA, which your browser does not "
            "know: it warns once."
        )
    stop = threading.Event()
    try:
        # Short waits so Ctrl+C is seen promptly on Windows too.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        _progress("stopping every version")


@click.command("demo")
@click_options(DemoOptions)
@click.option("--quick", is_flag=True, help="Fewer warm requests and a shorter diagnose.")
@click.option(
    "--database",
    metavar="DSN",
    help="postgresql://user[:pw]@host:port/db to use, or 'sqlite'. Default: a throwaway "
    "PostgreSQL cluster when the server binaries are found, else SQLite.",
)
@click.option(
    "--nginx",
    is_flag=True,
    help="Put nginx in front of each version (before: a tutorial config without upstream "
    "keep-alive; the others: lagscope nginx-config's).",
)
@click.option(
    "--nginx-bin",
    type=FILE_PATH,
    help="The nginx binary for --nginx (default: PATH, /usr/sbin/nginx).",
)
@click.option("--keep", is_flag=True, help="Leave the versions running; Ctrl+C stops them.")
@click.option("--json", "as_json", is_flag=True, help="Print the lagscope.demo/1 JSON instead.")
@click.option("-o", "--output", type=FILE_PATH, help="Write here.")
@click.option("--html", "html_path", type=FILE_PATH, help="Also write an HTML report.")
@click.option(
    "--log",
    "log_path",
    type=FILE_PATH,
    help="Append the fault proxies' per-connection ground truth (JSON lines).",
)
@click.option("--no-diagnose", is_flag=True, help="Measure only; skip diagnose.")
@click.option(
    "--no-browser",
    is_flag=True,
    help="Skip the real browser's page loads (by default they run when Chromium, Chrome or "
    "Edge and the browser extra are found).",
)
@click.option(
    "--browser-path",
    metavar="PATH",
    help="The Chromium-based browser that loads each version's pages.",
)
@click.option(
    "--https",
    is_flag=True,
    help="Serve 'lagscope' over HTTPS with HTTP/2 (serve --https, granian) with a CA of this "
    "run's own, trusted by the demo's browser only.",
)
@click.option("--load", "load_path", type=FILE_PATH, help="Render a saved --json run.")
def demo(
    quick: bool,
    database: str | None,
    nginx: bool,
    nginx_bin: Path | None,
    keep: bool,
    as_json: bool,
    output: Path | None,
    html_path: Path | None,
    log_path: Path | None,
    no_diagnose: bool,
    no_browser: bool,
    browser_path: str | None,
    https: bool,
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
    check_outputs(
        [("-o", output), ("--html", html_path), ("--log", log_path)], [("--load", load_path)]
    )
    if load_path is not None:
        from lagscope.saved import load_saved

        report = load_saved(load_path, "demo-1.schema.json", load_json)
    else:
        if https and nginx:
            raise LagscopeError(
                "demo",
                "--https and --nginx: the demo's nginx speaks plain HTTP to its upstream; "
                "for TLS in front of waitress use lagscope nginx-config --https",
                ExitCode.USAGE,
            )
        options, _ = build(
            DemoOptions,
            table,
            quick=quick,
            database=database,
            nginx=nginx,
            keep=keep,
            log_path=log_path,
            diagnose=not no_diagnose,
            nginx_bin=nginx_bin,
            browser=not no_browser,
            browser_path=browser_path,
            https=https,
        )
        diagnose = None if no_diagnose else default_diagnose(quick, options.tax_ms)

        def hold(r: DemoReport) -> None:
            _emit(r, as_json, output, html_path)
            _hold(r)

        report = run_demo(options, _progress, diagnose, hold=hold if keep else None)
        if keep:
            return
    _emit(report, as_json, output, html_path)

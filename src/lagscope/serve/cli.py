"""``lagscope serve``: the command line, derived from the settings table."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from lagscope.console import keep_stderr_printable
from lagscope.errors import ExitCode, LagscopeError
from lagscope.refapp.config import parse_database_url
from lagscope.serve.app import AppSpec
from lagscope.serve.settings import ServeConfig, render_config, resolve
from lagscope.settings_table import Host, click_options

__all__ = ["serve"]


@click.command("serve")
@click.argument("app", required=False, metavar="[MODULE:APP]")
@click.option("--demo", is_flag=True, help="Serve the reference app (lagscope.refapp).")
@click.option(
    "--django-settings", "django_settings", metavar="MOD", help="Serve this Django project."
)
@click.option(
    "--database",
    metavar="URL",
    help="Reference app database: postgresql://user@host:port/db or sqlite:///file "
    "(default: SQLite in the per-user data dir).",
)
@click.option(
    "--print-config", is_flag=True, help="Print the settings in force and why, then exit."
)
@click.option(
    "--reload",
    is_flag=True,
    help="Reload on code changes: a front process keeps the client connections open and "
    "switches to a new app process once it has imported and prewarmed (docs/serve.md).",
)
@click_options(ServeConfig)
def serve(
    app: str | None,
    demo: bool,
    django_settings: str | None,
    database: str | None,
    print_config: bool,
    reload: bool,
    **overrides: object,
) -> None:
    """Serve a Django/WSGI app on the tuned stack (waitress by default).

    Give exactly one of MODULE:APP, --django-settings MOD or --demo. Every new connection
    is kept alive, every database connection is opened before the first request, and
    Ctrl+C / SIGTERM lets in-flight requests finish.
    """
    keep_stderr_printable()  # waitress, Django and the app log what clients sent
    config = resolve(overrides, Host.current())
    if database:
        # Checked before anything starts (and with --print-config too): a bad URL is a
        # usage error, not a failure halfway through start-up.
        parse_database_url(database, Path("."))
    if print_config:
        click.echo(render_config(config), nl=False)
        return
    given = [x for x in (app, django_settings, "--demo" if demo else None) if x]
    if len(given) != 1:
        raise LagscopeError(
            "config",
            "give exactly one of MODULE:APP, --django-settings MOD or --demo",
            ExitCode.USAGE,
        )
    if database and not demo:
        raise LagscopeError(
            "config",
            "--database applies to --demo only (your settings name the database)",
            ExitCode.USAGE,
        )
    if demo:
        spec = AppSpec("demo", database=database)
    elif django_settings:
        spec = AppSpec("django", django_settings)
    else:
        spec = AppSpec("wsgi", str(app))
    if reload:
        if config.server != "waitress" or ("workers" in config.given and config.workers != 1):
            raise LagscopeError(
                "config",
                "--reload serves one waitress app process (leave out --server granian and "
                "--workers)",
                ExitCode.USAGE,
            )
        config = replace(config, workers=1)
        from lagscope.serve.reload.run import run_reload

        sys.exit(run_reload(spec, config, lambda line: click.echo(line)))
    from lagscope.serve.launcher import run

    sys.exit(run(spec, config))

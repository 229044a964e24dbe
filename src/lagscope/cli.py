"""The ``lagscope`` command group and the error boundary shared by every command.

Each command lives in its own subpackage and is added here. This module owns one rule:
a :class:`~lagscope.errors.LagscopeError` becomes one line on stderr and its exit code,
and Ctrl+C becomes exit 130, with no traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from lagscope import __version__
from lagscope.errors import ExitCode, LagscopeError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LagscopeError as exc:
            click.echo(f"lagscope: {exc.one_line()}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("lagscope: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lagscope")
def main() -> None:
    """Find where every millisecond of a slow web response goes."""


def _register() -> None:
    # Imported here, not at module top, so that `lagscope --help` stays cheap and an
    # optional extra missing for one command never breaks the others.
    from lagscope.probe.cli import probe

    main.add_command(probe)
    from lagscope.serve.cli import serve

    main.add_command(serve)
    from lagscope.nginx.cli import nginx_config; main.add_command(nginx_config)  # noqa: E702, I001
    from lagscope.inject.cli import inject; main.add_command(inject)  # noqa: E702, I001


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``lagscope`` command group and the error boundary shared by every command.

Each command lives in its own subpackage and is named in `_COMMANDS` here, imported only
when used. This module owns one rule:
a :class:`~lagscope.errors.LagscopeError` becomes one line on stderr and its exit code,
Ctrl+C becomes exit 130, and a console that cannot show the output becomes exit 8, with no
traceback (stdout and stderr first get ASCII stand-ins, see :mod:`lagscope.console`).
:mod:`lagscope.process_entry` is the process entry (console script, ``python -m lagscope``).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import Any

import click

from lagscope import __version__
from lagscope.console import fitted_streams, printable
from lagscope.errors import ExitCode, LagscopeError

# name -> "module:attribute". Commands are imported only when used (or listed by --help),
# so one command whose optional extra is missing never breaks the others.
_COMMANDS = {
    "cert": "lagscope.cert.cli:cert",
    "demo": "lagscope.demo.cli:demo",
    "diagnose": "lagscope.diagnose.cli:diagnose_command",
    "inject": "lagscope.inject.cli:inject",
    "nginx-config": "lagscope.nginx.cli:nginx_config",
    "probe": "lagscope.probe.cli:probe",
    "report": "lagscope.report.cli:report",
    "serve": "lagscope.serve.cli:serve",
}


class LagscopeGroup(click.Group):
    # Set only by the process entry (lagscope.process_entry), which loads everything with the cyclic
    # collector off: once a command has loaded, freeze what is loaded and turn it on.
    freeze_loaded = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        # The cyclic collector would run a dozen times while a command's modules load and
        # find nothing to free (they all stay alive): ~4 ms of a short probe's start-up.
        collecting = gc.isenabled()
        gc.disable()
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise LagscopeError(
                cmd_name,
                f"cannot load this command ({exc}); install lagscope with its extras, "
                "e.g. pip install 'lagscope[serve]'",
                ExitCode.ENVIRONMENT,
            ) from None
        finally:
            if self.freeze_loaded:
                # Loaded modules stay for the process's life: frozen, no collection while the
                # command runs walks them again (the first one would have, ~1 ms).
                gc.freeze()
                gc.enable()
            elif collecting:
                gc.enable()
        command: click.Command = getattr(module, attr)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The exact command line, for reports that show how they were made.
        ctx.meta["lagscope.argv"] = ("lagscope", *args)
        return super().parse_args(ctx, args)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Around everything click prints, usage errors included: a console whose encoding
        # lacks a character gets an ASCII stand-in for it, not a UnicodeEncodeError.
        with fitted_streams():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LagscopeError as exc:
            click.echo(f"lagscope: {exc.one_line()}", err=True)
            ctx.exit(int(exc.exit_code))
        except UnicodeEncodeError as exc:
            if exc.encoding.lower().replace("_", "-").startswith(("utf-8", "utf8", "utf-16")):
                # A UTF codec refuses only a lone surrogate: the input is the problem, not
                # the console (saved files with one are refused at load).
                click.echo(
                    f"lagscope: input: {exc.object[exc.start : exc.end]!a} is half of a"
                    " UTF-16 pair, not text any output can hold",
                    err=True,
                )
                ctx.exit(int(ExitCode.USAGE))
            # Only a stream that could not be given stand-ins (see lagscope.console) gets here.
            encoding = getattr(sys.stdout, "encoding", None) or exc.encoding
            click.echo(
                f"lagscope: output: the console's encoding ({encoding}) cannot show"
                f" {exc.object[exc.start : exc.end]!a}; set PYTHONIOENCODING=utf-8 or"
                " save the report with -o FILE",
                err=True,
            )
            ctx.exit(int(ExitCode.ENVIRONMENT))
        except KeyboardInterrupt:
            click.echo("lagscope: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            # A bug: still one line, and the traceback only when asked for.
            if os.environ.get("LAGSCOPE_TRACEBACK"):
                raise
            click.echo(
                f"lagscope: internal error: {type(exc).__name__}: "
                f"{printable(' '.join(str(exc).split()))}"
                " (a bug in lagscope; LAGSCOPE_TRACEBACK=1 shows where)",
                err=True,
            )
            ctx.exit(int(ExitCode.INTERNAL))


@click.group(cls=LagscopeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lagscope")
def main() -> None:
    """Find where every millisecond of a slow web response goes."""

"""``python manage.py lagscope {db,serve,diagnose}``: lagscope with this project's settings.

A thin shell: ``db`` hands the project's ``DATABASES`` to :mod:`lagscope.dbcheck`,
``serve`` runs ``lagscope serve --django-settings <this project>`` in this process with
every serve flag, and ``diagnose`` runs :func:`lagscope.diagnose.run`. Failures are one
line and an exit code from :class:`lagscope.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lagscope.dbcheck.model import DbReport
from lagscope.dbcheck.settings import DbCheckSettings
from lagscope.errors import ExitCode, LagscopeError
from lagscope.settings_table import argparse_options, rows

__all__ = ["Command"]

_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_DELEGATED = ("serve", "diagnose")
# Django's connection parameters that are not libpq's (or not text).
_NOT_LIBPQ = frozenset({"cursor_factory", "context", "client_encoding"})


def _django_options(parser: argparse.ArgumentParser) -> None:
    # Django's own options, also accepted after the subcommand ("lagscope db -v 2").
    # SUPPRESS: given before the subcommand, the value there must survive.
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        choices=[0, 1, 2, 3],
        default=argparse.SUPPRESS,
        help="0 findings only, 1 per-alias figures, 2 every sample.",
    )
    parser.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS)
    parser.add_argument("--force-color", action="store_true", default=argparse.SUPPRESS)


class Command(BaseCommand):
    help = "lagscope with this project's settings: db, serve, diagnose."
    # The db subcommand is how a broken database setting gets diagnosed: do not refuse
    # to start over a system check.
    requires_system_checks: list[str] = []  # noqa: RUF012  (the base class declares it)

    # What follows "serve" or "diagnose" on the command line, verbatim: argparse's
    # REMAINDER stops at the first option-looking word, and their flags all look like one.
    _tail: list[str] | None = None

    def run_from_argv(self, argv: list[str]) -> None:
        rest = argv[2:]
        first = next((i for i, word in enumerate(rest) if not word.startswith("-")), None)
        if first is not None and rest[first] in _DELEGATED:
            self._tail = rest[first + 1 :]
            argv = argv[: 2 + first + 1]
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="{db,serve,diagnose}")
        db = sub.add_parser(
            "db",
            help="Connect time and SELECT 1 round trip per DATABASES alias, with findings.",
            description="Measure what a new connection and a round trip cost for each "
            "DATABASES alias, with this project's settings and driver. Never prints a "
            "password.",
        )
        db.add_argument(
            "--database",
            action="append",
            dest="aliases",
            metavar="ALIAS",
            help="Only this alias (repeatable; default: every alias).",
        )
        argparse_options(DbCheckSettings, db)
        _django_options(db)
        db.add_argument("--json", action="store_true", help="Print the report as JSON.")
        db.add_argument(
            "--load",
            metavar="FILE",
            help="Render a report saved with --json instead of measuring.",
        )
        db.add_argument(
            "--fail-on",
            choices=("critical", "warning"),
            help="Exit 1 when a finding is at least this severe.",
        )
        serve = sub.add_parser(
            "serve",
            add_help=False,
            help="lagscope serve --django-settings <this project>; every serve flag "
            "applies (manage.py lagscope serve --help lists them).",
        )
        serve.add_argument("serve_args", nargs=argparse.REMAINDER)
        diagnose = sub.add_parser(
            "diagnose",
            add_help=False,
            help="lagscope diagnose URL, with the database rung from this project's "
            "DATABASES (--alias ALIAS, default 'default'; PostgreSQL); every diagnose flag "
            "applies (manage.py lagscope diagnose --help lists them).",
        )
        diagnose.add_argument("diagnose_args", nargs=argparse.REMAINDER)

    def handle(self, *args: Any, **options: Any) -> None:
        _tolerant_streams()
        try:
            if options["subcommand"] == "db":
                self._db(options)
            elif options["subcommand"] == "serve":
                tail = self._tail
                self._serve(tail if tail is not None else options["serve_args"])
            elif options["subcommand"] == "diagnose":
                tail = self._tail
                self._diagnose(tail if tail is not None else options["diagnose_args"])
        except LagscopeError as exc:
            raise CommandError(
                f"lagscope: {exc.one_line()}", returncode=int(exc.exit_code)
            ) from None
        except KeyboardInterrupt:
            # As the lagscope command does: one line and 130, never a traceback.
            raise CommandError(
                "lagscope: interrupted", returncode=int(ExitCode.INTERRUPTED)
            ) from None

    # -- db ------------------------------------------------------------------------

    def _db(self, options: dict[str, Any]) -> None:
        if options["load"] is not None:
            report = _load_report(options["load"])
        else:
            report = self._measure(options)
        self._report(report, options)

    def _measure(self, options: dict[str, Any]) -> DbReport:
        from django.db import connections

        from lagscope.dbcheck.measure import measure

        known = list(connections.settings)
        aliases = options["aliases"] or known
        unknown = [a for a in aliases if a not in known]
        if unknown:
            raise LagscopeError(
                "db",
                f"no DATABASES alias {unknown[0]!r} (have: {', '.join(known)})",
                ExitCode.USAGE,
            )
        return measure(
            connections.settings,
            aliases,
            samples=options["samples"],
            clock=time.perf_counter,
            connect_timeout_s=options["timeout_s"],
        )

    def _report(self, report: DbReport, options: dict[str, Any]) -> None:
        from lagscope.dbcheck.render import render_json, render_text

        down = report.unreachable
        if options["json"]:
            self.stdout.write(render_json(report), ending="")
        elif len(down) < len(report.aliases):
            for line in render_text(report, options["verbosity"]).splitlines():
                self.stdout.write(self._styled(line))
        if down:
            first = down[0]
            also = f" (and {len(down) - 1} more)" if len(down) > 1 else ""
            raise LagscopeError(
                "db",
                f"cannot connect to {first.settings.alias!r} ({first.settings.where()}): "
                f"{first.error}{also}",
                ExitCode.CONNECT,
            )
        fail_on = options["fail_on"]
        if fail_on is not None and any(
            _SEVERITY_RANK[f.finding.severity] <= _SEVERITY_RANK[fail_on] for f in report.findings
        ):
            raise CommandError(
                f"lagscope: db: a finding is {fail_on} or worse",
                returncode=int(ExitCode.GATE_FAILED),
            )

    def _styled(self, line: str) -> str:
        if line.startswith("  [critical]"):
            return str(self.style.ERROR(line))
        if line.startswith("  [warning]"):
            return str(self.style.WARNING(line))
        return line

    # -- diagnose ------------------------------------------------------------------

    def _diagnose(self, args: list[str]) -> None:
        from lagscope.diagnose.cli import diagnose_command

        # The command line the report records: the user's, never the DSN added here.
        shown = ("python", "manage.py", "lagscope", "diagnose", *args)
        args, alias = _take_option(args, "--alias", "default")
        flag = _database_flag()
        given = any(a == flag or a.startswith(f"{flag}=") for a in args)
        if not given and not {"--load", "--help", "-h"} & set(args):
            dsn = self._project_dsn(alias)
            if dsn is not None:
                args = [*args, flag, dsn]
        _run_click(diagnose_command, args, "manage.py lagscope diagnose", "diagnose", shown)

    def _project_dsn(self, alias: str) -> str | None:
        """libpq parameters of ``alias`` as Django would connect, or None (with a note)."""
        from django.db import connections

        if alias not in connections.settings:
            have = ", ".join(connections.settings)
            raise LagscopeError(
                "diagnose", f"no DATABASES alias {alias!r} (have: {have})", ExitCode.USAGE
            )
        wrapper = connections.create_connection(alias)
        if wrapper.vendor != "postgresql":
            self.stderr.write(
                f"lagscope: diagnose: DATABASES[{alias!r}] is {wrapper.vendor}; the database "
                "rung needs PostgreSQL, so it is skipped"
            )
            return None
        from lagscope.dsn import conninfo

        params = {
            k: v
            for k, v in wrapper.get_connection_params().items()
            if k not in _NOT_LIBPQ and isinstance(v, (str, int)) and not isinstance(v, bool)
        }
        return conninfo({k: str(v) for k, v in params.items()})

    # -- serve ---------------------------------------------------------------------

    def _serve(self, serve_args: list[str]) -> None:
        from lagscope.serve.cli import serve

        module = settings.SETTINGS_MODULE
        if not module:
            raise LagscopeError(
                "serve", "settings were configured without a settings module", ExitCode.USAGE
            )
        if any(a == "--django-settings" or a.startswith("--django-settings=") for a in serve_args):
            raise LagscopeError(
                "serve", "--django-settings is this project's; leave it out", ExitCode.USAGE
            )
        _run_click(
            serve, ["--django-settings", module, *serve_args], "manage.py lagscope serve", "serve"
        )


def _load_report(path: str) -> DbReport:
    from pathlib import Path

    from lagscope.saved import load_saved

    # lagscope.db/1 has no published schema: DbReport.from_json checks every field itself.
    return load_saved(Path(path), None, DbReport.from_json, validate=False)


def _tolerant_streams() -> None:
    # A Windows console or pipe in cp1252 cannot encode every alias, path or driver
    # message: escape what it cannot show rather than fail with a traceback.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "errors", "") or "") == "strict":
            reconfigure(errors="backslashreplace")


def _database_flag() -> str:
    """diagnose's flag for a database DSN, as its settings row names it."""
    from lagscope.diagnose.settings import DiagnoseSettings

    return next(r.flag for r in rows(DiagnoseSettings) if r.name == "database")


def _take_option(args: list[str], name: str, default: str) -> tuple[list[str], str]:
    """``args`` without ``name VALUE`` / ``name=VALUE``, and the value (the last given)."""
    out: list[str] = []
    value = default
    i = 0
    while i < len(args):
        word = args[i]
        if word == name:
            if i + 1 >= len(args):
                raise LagscopeError("options", f"{name} needs a value", ExitCode.USAGE)
            value = args[i + 1]
            i += 2
            continue
        if word.startswith(name + "="):
            value = word[len(name) + 1 :]
        else:
            out.append(word)
        i += 1
    return out, value


def _run_click(
    command: Any, args: list[str], prog_name: str, phase: str, shown: tuple[str, ...] = ()
) -> None:
    import click

    # As click's standalone mode runs a command, but its errors come back here as
    # exceptions, and the command line it may record is ``shown`` (lagscope's root
    # group puts it in the same place).
    try:
        with command.make_context(prog_name, list(args)) as ctx:
            if shown:
                ctx.meta["lagscope.argv"] = shown
            command.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --print-config
        if exc.exit_code:
            raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        raise LagscopeError(phase, exc.format_message(), ExitCode.USAGE) from None

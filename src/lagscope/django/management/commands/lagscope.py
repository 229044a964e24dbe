"""``python manage.py lagscope {db,serve,diagnose}``: lagscope with this project's settings.

A thin shell: ``db`` hands the project's ``DATABASES`` to :mod:`lagscope.dbcheck`,
``serve`` runs ``lagscope serve --django-settings <this project>`` in this process with
every serve flag, and ``diagnose`` runs :func:`lagscope.diagnose.run`. Failures are one
line and an exit code from :class:`lagscope.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lagscope.errors import ExitCode, LagscopeError

__all__ = ["Command"]

_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def _bounded_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, not {value}")
        return value

    return parse


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

    # What follows "serve" on the command line, verbatim: argparse's REMAINDER stops at
    # the first option-looking word, and every serve flag looks like one.
    _serve_tail: list[str] | None = None

    def run_from_argv(self, argv: list[str]) -> None:
        rest = argv[2:]
        first = next((i for i, word in enumerate(rest) if not word.startswith("-")), None)
        if first is not None and rest[first] == "serve":
            self._serve_tail = rest[first + 1 :]
            argv = argv[: 2 + first + 1]
        super().run_from_argv(argv)

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="{db,serve}")
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
        db.add_argument(
            "--samples",
            type=_bounded_int(1, 100),
            default=5,
            help="Connects (and round trips) per alias, 1..100 (default 5).",
        )
        db.add_argument(
            "--timeout",
            type=_bounded_int(1, 600),
            default=10,
            help="Connect timeout in seconds for PostgreSQL/MySQL when OPTIONS sets "
            "none, 1..600 (default 10).",
        )
        _django_options(db)
        db.add_argument("--json", action="store_true", help="Print the report as JSON.")
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

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "db":
                self._db(options)
            elif options["subcommand"] == "serve":
                tail = self._serve_tail
                self._serve(tail if tail is not None else options["serve_args"])
        except LagscopeError as exc:
            raise CommandError(
                f"lagscope: {exc.one_line()}", returncode=int(exc.exit_code)
            ) from None

    # -- db ------------------------------------------------------------------------

    def _db(self, options: dict[str, Any]) -> None:
        from django.db import connections

        from lagscope.dbcheck.measure import measure
        from lagscope.dbcheck.render import render_json, render_text

        known = list(connections.settings)
        aliases = options["aliases"] or known
        unknown = [a for a in aliases if a not in known]
        if unknown:
            raise LagscopeError(
                "db",
                f"no DATABASES alias {unknown[0]!r} (have: {', '.join(known)})",
                ExitCode.USAGE,
            )
        report = measure(
            connections.settings,
            aliases,
            samples=options["samples"],
            clock=time.perf_counter,
            connect_timeout_s=options["timeout"],
        )
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
        # standalone_mode=False: serve's own errors come back here as exceptions.
        import click

        try:
            serve.main(
                args=["--django-settings", module, *serve_args],
                prog_name="manage.py lagscope serve",
                standalone_mode=False,
            )
        except click.exceptions.Exit as exc:  # --help, --print-config
            if exc.exit_code:
                raise SystemExit(exc.exit_code) from None
        except click.ClickException as exc:
            raise LagscopeError("serve", exc.format_message(), ExitCode.USAGE) from None

"""The settings-table mechanism: bounds, types from annotations, derived defaults, the
generated click options, and the docs tables that must match the generator.

``uv run python tests/test_settings_table.py --write`` rewrites the docs tables.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from lagscope.errors import ExitCode, LagscopeError
from lagscope.settings_table import (
    INT_MAX,
    Host,
    SettingsError,
    Sofar,
    argparse_options,
    build,
    click_options,
    derived,
    markdown,
    rows,
    setting,
    validate,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"

# (doc file, "module:function" that generates its table). Every settings table has a row.
GENERATED_TABLES: tuple[tuple[str, str], ...] = (
    ("serve.md", "lagscope.serve.settings:docs_table"),
    ("nginx.md", "lagscope.nginx.config:docs_table"),
    ("inject.md", "lagscope.inject.config:docs_table"),
    ("probe.md", "lagscope.probe.options:docs_table"),
    ("diagnose.md", "lagscope.diagnose.settings:docs_table"),
    ("demo.md", "lagscope.demo.runner:docs_table"),
    ("django.md", "lagscope.dbcheck.settings:docs_table"),
    ("server-timing.md", "lagscope.instrument.options:settings_table_markdown"),
)


def _generate(target: str) -> str:
    module, func = target.split(":")
    table: Callable[[], str] = getattr(importlib.import_module(module), func)
    return table()


@pytest.mark.parametrize(("doc", "target"), GENERATED_TABLES)
def test_docs_tables_are_the_generated_ones(doc: str, target: str) -> None:
    text = (DOCS / doc).read_text(encoding="utf-8")
    expected = _generate(target)
    assert expected in text, (
        f"docs/{doc} is out of date with {target}; "
        "run: uv run python tests/test_settings_table.py --write"
    )


def _write_docs() -> None:
    for doc, target in GENERATED_TABLES:
        path = DOCS / doc
        lines = path.read_text(encoding="utf-8").split("\n")
        new = _generate(target).split("\n")
        start = lines.index(new[0])  # the header row locates the table
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = new
        path.write_text("\n".join(lines), encoding="utf-8")


def _cpu_threads(sofar: Sofar, host: Host) -> tuple[int, str]:
    return min(host.cpu_count, sofar.int("budget")), f"{host.cpu_count} CPUs"


@dataclass(frozen=True, kw_only=True)
class Sample:
    mode: Literal["fast", "safe"] = setting("safe", help="How.", why="because")
    budget: int = setting(8, help="Budget.", minimum=1, maximum=100)
    workers: int = derived(_cpu_threads, shown="CPUs, ≤ budget", help="Workers.", minimum=1)
    timeout_s: float = setting(2.0, unit="s", help="Timeout.", above=0, maximum=60)
    rate: float | None = setting(None, help="Rate.", minimum=0.001)
    verbose: bool = setting(False, help="Talk.")
    not_a_row: str = "x"

    def __post_init__(self) -> None:
        validate(self)


FAKE = Host(cpu_count=4, platform="linux")


def test_types_come_from_the_annotations() -> None:
    kinds = {r.name: (r.kind, r.optional, r.choices) for r in rows(Sample)}
    assert kinds == {
        "mode": ("choice", False, ("fast", "safe")),
        "budget": ("int", False, ()),
        "workers": ("int", False, ()),
        "timeout_s": ("float", False, ()),
        "rate": ("float", True, ()),
        "verbose": ("bool", False, ()),
    }


def test_derived_defaults_are_a_function_of_the_host_and_rows_above() -> None:
    sample, built = build(Sample, {}, host=FAKE)
    assert sample.workers == 4
    assert built.why["workers"] == "4 CPUs"
    assert built.why["mode"] == "because"
    smaller, built = build(Sample, {"budget": 2, "rate": None}, host=FAKE)
    assert smaller.workers == 2
    assert built.given == {"budget"}
    assert build(Sample, {}, host=Host(cpu_count=64, platform="win32"))[0].workers == 8


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"budget": 0}, "--budget must be at least 1, got 0"),
        ({"budget": 101}, "--budget must be at most 100, got 101"),
        ({"budget": True}, "--budget must be int, got True"),
        ({"budget": 2.0}, "--budget must be int"),
        ({"timeout_s": 0}, "--timeout-s must be above 0"),
        ({"timeout_s": math.nan}, "--timeout-s must be a finite number, got nan"),
        ({"timeout_s": math.inf}, "must be a finite number"),
        ({"timeout_s": -math.inf}, "must be a finite number"),
        ({"rate": 1e-300}, "--rate must be at least 0.001"),
        ({"rate": 1e300}, "--rate must be at most 1000000"),
        ({"mode": "turbo"}, "--mode must be one of fast, safe, got 'turbo'"),
        ({"verbose": 1}, "--verbose must be bool"),
        ({"nope": 1}, "unknown setting 'nope'"),
    ],
)
def test_every_rejection_is_one_usage_error(values: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        build(Sample, values, host=FAKE)
    assert isinstance(info.value, LagscopeError)
    assert isinstance(info.value, ValueError)
    assert info.value.exit_code == ExitCode.USAGE
    assert needle in info.value.one_line()


def test_the_python_api_refuses_what_the_cli_refuses() -> None:
    with pytest.raises(SettingsError, match="--budget must be at most 100"):
        Sample(workers=1, budget=1000)
    # An int for a float row is stored as a float, so the annotation holds.
    sample = Sample(workers=1, timeout_s=3)
    assert isinstance(sample.timeout_s, float)


def test_integers_stay_inside_a_c_int_unless_a_row_says_less() -> None:
    @dataclass(frozen=True)
    class Wide:
        count: int = setting(1, help="Count.")

        def __post_init__(self) -> None:
            validate(self)

    assert Wide(INT_MAX).count == INT_MAX
    with pytest.raises(SettingsError, match="at most 2147483647"):
        Wide(INT_MAX + 1)


def test_strings_are_parsed_when_asked() -> None:
    sample, _ = build(Sample, {"budget": "7", "verbose": "on"}, host=FAKE, parse_strings=True)
    assert (sample.budget, sample.verbose) == (7, True)
    with pytest.raises(SettingsError, match="--budget needs an integer, not 'x'"):
        build(Sample, {"budget": "x"}, host=FAKE, parse_strings=True)
    with pytest.raises(SettingsError, match="finite"):
        build(Sample, {"timeout_s": "nan"}, host=FAKE, parse_strings=True)


def test_click_options_and_help_come_from_the_rows() -> None:
    @click.command()
    @click_options(Sample)
    def cmd(**given: object) -> None:
        sample, built = build(Sample, given, host=FAKE)
        click.echo(f"{sample.workers} {sample.mode} {sorted(built.given)}")

    runner = CliRunner()
    ok = runner.invoke(cmd, ["--mode", "fast", "--no-verbose"])
    assert ok.exit_code == 0, ok.output
    assert ok.output == "4 fast ['mode', 'verbose']\n"
    helped = runner.invoke(cmd, ["--help"])
    assert "[default: CPUs, ≤ budget; 1–2147483647]" in helped.output
    assert "[default: 2 s; > 0, ≤ 60]" in helped.output
    assert "--verbose / --no-verbose" in helped.output
    flags = [opt for param in cmd.params for opt in param.opts]
    assert flags == ["--mode", "--budget", "--workers", "--timeout-s", "--rate", "--verbose"]


def test_markdown_shows_defaults_ranges_and_reasons() -> None:
    table = markdown(
        Sample,
        columns=[("flag", "flag"), ("default", "default"), ("range", "range"), ("why", "why")],
    )
    lines = table.splitlines()
    assert lines[0] == "| flag | default | range | why |"
    assert "| `--mode` | safe | fast, safe | because |" in lines
    assert "| `--budget` | 8 | 1–100 |  |" in lines
    assert "| `--timeout-s` | 2 s | > 0, ≤ 60 |  |" in lines
    assert "| `--rate` | none | 0.001–1000000 |  |" in lines
    assert "| `--verbose` | off |  |  |" in lines
    assert len(lines) == 2 + 6


@dataclass(frozen=True)
class Limits:
    duration_s: float | None = setting(None, unit="s", help="Stop after this long.", above=0)


def test_markdown_puts_several_tables_under_one_header_in_order() -> None:
    lines = markdown(Sample, Limits).splitlines()
    assert lines[0] == "| flag | default | range | what | why |"
    assert lines[1] == "|---|---|---|---|---|"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| `--mode`",
        "| `--budget`",
        "| `--workers`",
        "| `--timeout-s`",
        "| `--rate`",
        "| `--verbose`",
        "| `--duration-s`",
    ]
    assert lines[-1] == "| `--duration-s` | none | > 0, ≤ 1000000 | Stop after this long. |  |"


def test_derivations_read_typed_values() -> None:
    sofar = Sofar({"n": 3, "flag": True, "name": "x"})
    assert (sofar.int("n"), sofar.bool("flag"), sofar.str("name")) == (3, True, "x")
    with pytest.raises(TypeError, match="not an int"):
        sofar.int("flag")  # a bool is not a count
    with pytest.raises(TypeError, match="not a str"):
        sofar.str("n")


def test_a_host_describes_this_machine() -> None:
    host = Host.current()
    assert host.cpu_count >= 1
    assert host.platform == sys.platform
    import django

    assert host.django_version == tuple(django.VERSION[:2])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        _write_docs()


@dataclass(frozen=True)
class Request:
    method: str = setting("GET", short="-X", help="HTTP method.")
    target: str | None = setting(None, metavar="URL", help="Where to send it.")
    port: int = setting(80, help="Its port.", extra={"directive": "listen"})


def test_a_row_names_its_value_and_a_short_flag_for_click_and_argparse() -> None:
    import argparse

    @click.command()
    @click_options(Request)
    def cmd(**given: object) -> None:
        request, _ = build(Request, given)
        click.echo(f"{request.method} {request.target}")

    runner = CliRunner()
    ok = runner.invoke(cmd, ["-X", "HEAD", "--target", "http://127.0.0.1/"])
    assert ok.output == "HEAD http://127.0.0.1/\n", ok.output
    helped = runner.invoke(cmd, ["--help"]).output
    assert "-X, --method TEXT" in helped and "--target URL" in helped

    parser = argparse.ArgumentParser()
    argparse_options(Request, parser)
    parsed = parser.parse_args(["-X", "POST"])
    assert (parsed.method, parsed.target) == ("POST", None)
    assert "--target URL" in parser.format_help()


def test_an_extra_column_is_empty_for_a_row_without_it() -> None:
    table = markdown(Request, columns=[("flag", "flag"), ("directive", "directive")])
    assert "| `--port` | `listen` |" in table.splitlines()
    assert "| `--method` |  |" in table.splitlines()

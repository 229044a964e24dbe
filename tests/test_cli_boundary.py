"""The CLI's error boundary: whatever goes wrong is one line and a documented exit code."""

from __future__ import annotations

import click
from click.testing import CliRunner

from lagscope.cli import LagscopeGroup
from lagscope.errors import ExitCode


def _group_with(command: click.Command) -> click.Group:
    group = LagscopeGroup(name="lagscope")
    group.add_command(command)
    return group


@click.command("broken")
def broken() -> None:
    raise ValueError("an unexpected\nvalue")


def test_an_unexpected_error_is_one_line_and_exit_70() -> None:
    result = CliRunner().invoke(_group_with(broken), ["broken"], env={"LAGSCOPE_TRACEBACK": ""})
    assert result.exit_code == int(ExitCode.INTERNAL)
    assert int(ExitCode.INTERNAL) == 70
    assert result.output == (
        "lagscope: internal error: ValueError: an unexpected value "
        "(a bug in lagscope; LAGSCOPE_TRACEBACK=1 shows where)\n"
    )


def test_the_traceback_when_asked_for() -> None:
    result = CliRunner().invoke(_group_with(broken), ["broken"], env={"LAGSCOPE_TRACEBACK": "1"})
    assert isinstance(result.exception, ValueError)


def test_usage_errors_stay_clicks() -> None:
    result = CliRunner().invoke(_group_with(broken), ["broken", "--nope"])
    assert result.exit_code == 2
    assert "No such option" in result.output

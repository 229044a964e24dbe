"""The settings table: defaults per host, overrides, validation, --print-config."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.cli import serve
from lagscope.serve.settings import (
    SETTINGS,
    Host,
    render_config,
    resolve,
    select_limit,
)

LINUX2 = Host(cpu_count=2, platform="linux")
WIN8 = Host(cpu_count=8, platform="win32")
BIG = Host(cpu_count=64, platform="linux")


def test_defaults_on_a_two_cpu_linux_box() -> None:
    config = resolve({}, LINUX2)
    assert config.threads == 2
    assert config.channel_timeout == 310.0
    assert 300 < config.channel_timeout < 400  # just above browsers' 300 s idle timeout
    assert config.connection_limit == 1024 - 32 - 16
    assert config.listen_hosts == ("127.0.0.1", "::1")
    assert config.given == frozenset()


def test_windows_connection_limit_stays_inside_select_limit() -> None:
    config = resolve({}, WIN8)
    assert select_limit("win32") == 512
    assert config.connection_limit == 500
    assert config.threads == 8


def test_threads_are_capped_by_cpus_and_by_the_connection_budget() -> None:
    assert resolve({}, BIG).threads == 8
    limited = resolve({"db_connections": 3}, BIG)
    assert limited.threads == 3
    assert "db_connections / workers = 3" in limited.why["threads"]
    assert resolve({}, Host(cpu_count=1, platform="linux")).threads == 2
    # With workers the budget is shared: 16 connections over 4 workers leaves 4 threads each.
    shared = resolve({"workers": 4}, BIG)
    assert (shared.threads, shared.connections_per_alias) == (4, 16)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]"])
def test_one_worker_by_default_on_a_loopback_address(host: str) -> None:
    config = resolve({"host": host}, BIG)
    assert config.workers == 1
    assert "loopback" in config.why["workers"]


def test_a_server_for_other_machines_gets_a_worker_per_cpu_up_to_four() -> None:
    assert resolve({"host": "0.0.0.0"}, LINUX2).workers == 2
    assert resolve({"host": "::"}, WIN8).workers == 4
    assert resolve({"host": "192.0.2.7"}, Host(cpu_count=1, platform="linux")).workers == 1
    # The derived default never breaks the connection budget it is checked against.
    tight = resolve({"host": "0.0.0.0", "db_connections": 3}, BIG)
    assert (tight.workers, tight.threads) == (3, 1)
    assert "cut to db_connections = 3" in tight.why["workers"]
    # Given, it is the user's: no rule second-guesses it.
    assert resolve({"host": "0.0.0.0", "workers": 1}, BIG).workers == 1


def test_trusted_proxy_sets_waitress_to_honour_only_that_address() -> None:
    plain = resolve({}, LINUX2).waitress_adjustments()
    assert "trusted_proxy" not in plain
    assert plain["clear_untrusted_proxy_headers"] is True
    adj = resolve({"trusted_proxy": "127.0.0.2"}, LINUX2).waitress_adjustments()
    assert adj["trusted_proxy"] == "127.0.0.2"
    assert adj["trusted_proxy_count"] == 1
    assert adj["trusted_proxy_headers"] == {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
    }


def test_overrides_win_and_are_marked_given() -> None:
    config = resolve({"threads": 1, "channel_timeout": "65", "host": "127.0.0.1"}, LINUX2)
    assert config.threads == 1
    assert config.channel_timeout == 65.0
    assert config.listen_hosts == ("127.0.0.1",)
    assert config.given == {"threads", "channel_timeout", "host"}
    assert config.why["threads"] == "given"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"connection_limit": 2000}, "select()"),
        ({"threads": 20, "db_connections": 4}, "exceeds --db-connections"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"port": 99999}, "--port must be at most 65535"),
        ({"channel_timeout": "soon"}, "needs a number"),
        ({"server": "gunicorn"}, "must be one of"),
        ({"nonsense": 1}, "unknown serve setting"),
    ],
)
def test_bad_overrides_are_usage_errors(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(LagscopeError) as info:
        resolve(overrides, LINUX2)
    assert info.value.exit_code == ExitCode.USAGE
    assert needle in info.value.one_line()


def test_print_config_lists_every_setting_with_a_reason() -> None:
    text = render_config(resolve({"threads": 1}, LINUX2))
    for setting in SETTINGS:
        assert f"\n{setting.name} = " in text
    assert "given on the command line" in text
    assert "300 s idle timeout" in text


def test_cli_flags_come_from_the_table() -> None:
    flags = {opt for param in serve.params for opt in (*param.opts, *param.secondary_opts)}
    for setting in SETTINGS:
        assert setting.flag in flags
        if setting.kind == "bool":
            assert f"--no-{setting.flag[2:]}" in flags


def test_cli_print_config_and_usage_errors() -> None:
    runner = CliRunner()
    from lagscope.cli import main

    ok = runner.invoke(main, ["serve", "--print-config", "--threads", "3"])
    assert ok.exit_code == 0, ok.output
    assert "threads = 3 threads" in ok.output
    none = runner.invoke(main, ["serve"])
    assert none.exit_code == ExitCode.USAGE
    assert "exactly one of" in none.output
    assert "Traceback" not in none.output
    both = runner.invoke(main, ["serve", "--demo", "--django-settings", "x"])
    assert both.exit_code == ExitCode.USAGE
    stray = runner.invoke(main, ["serve", "mod:app", "--database", "sqlite:///x"])
    assert stray.exit_code == ExitCode.USAGE
    assert "--database applies to --demo only" in stray.output
    # In this process pytest-django has configured Django already: serve refuses to
    # re-point it (and so never touches the suite's test database settings).
    other = runner.invoke(main, ["serve", "--django-settings", "no_such_pkg_xyz.settings"])
    assert other.exit_code == ExitCode.USAGE
    assert "Django is already configured with 'django_settings'" in other.output
    bad = runner.invoke(main, ["serve", "no_such_module_xyz:app", "--port", "0"])
    assert bad.exit_code == ExitCode.USAGE
    assert "cannot import 'no_such_module_xyz'" in bad.output


def test_docs_cover_every_setting() -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "serve.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"`{setting.flag}`" in docs, setting.flag


def test_public_api_is_explicit() -> None:
    import lagscope.refapp
    import lagscope.serve

    for module in (lagscope.serve, lagscope.refapp):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
    assert {"ServeProcess", "serve_command", "start_waitress", "load_app", "resolve"} <= set(
        lagscope.serve.__all__
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backlog", "99999999999"], "--backlog must be at most 65535"),
        (["--channel-timeout", "nan"], "--channel-timeout must be a finite number"),
        (["--shutdown-timeout", "nan"], "--shutdown-timeout must be a finite number"),
        (["--prewarm-timeout", "inf"], "--prewarm-timeout must be a finite number"),
        (["--threads", "99999999999999999999"], "--threads must be at most 1024"),
        (["--demo", "--database", "postgresql://[::1"], "database: invalid connection string"),
    ],
)
def test_nonsense_numbers_and_urls_are_one_line_usage_errors(args: list[str], needle: str) -> None:
    from lagscope.cli import main

    # --print-config: everything is validated, nothing is started.
    result = CliRunner().invoke(main, ["serve", "--print-config", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith(("lagscope: config: ", "lagscope: database: "))
    assert needle in result.output
    assert result.output.count("\n") == 1


def test_the_python_api_validates_like_the_cli() -> None:
    config = resolve({}, LINUX2)
    with pytest.raises(LagscopeError, match="--port must be at most 65535"):
        dataclasses.replace(config, port=70000)
    with pytest.raises(ValueError, match="--shutdown-timeout must be a finite number"):
        dataclasses.replace(config, shutdown_timeout=float("nan"))
    assert isinstance(config.threads, int) and isinstance(config.channel_timeout, float)


@pytest.mark.parametrize("host", [LINUX2, WIN8, BIG])
def test_a_resolved_config_crosses_to_a_worker_as_it_was(host: Host) -> None:
    # Spawned workers get it pickled, granian's as JSON in the environment: both must give
    # back the parent's config, machine-dependent defaults and reasons included, without
    # resolving again on the worker's machine facts.
    import json
    import pickle

    from lagscope.serve.settings import config_as_dict, config_from_dict

    config = resolve({"port": 0, "workers": 2, "trusted_proxy": "127.0.0.1"}, host)
    as_json = json.dumps(config_as_dict(config))
    for copy in (pickle.loads(pickle.dumps(config)), config_from_dict(json.loads(as_json))):
        assert copy == config
        assert copy.host_facts == host
        assert dict(copy.why) == dict(config.why)
        assert copy.given == config.given == {"port", "workers", "trusted_proxy"}
        assert copy.threads == config.threads and copy.connection_limit == config.connection_limit

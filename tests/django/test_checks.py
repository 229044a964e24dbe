"""System checks lagscope.*: each one directly and through ``call_command("check")``."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.checks import CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from lagscope.django import checks

MW = checks.MIDDLEWARE_PATH
COMMON = checks.COMMON_MIDDLEWARE
SQLITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
PG = "django.db.backends.postgresql"


def pg(**extra: Any) -> dict[str, Any]:
    return {
        "ENGINE": PG,
        "NAME": "app",
        "HOST": "10.0.0.5",
        "CONN_MAX_AGE": 600,
        "CONN_HEALTH_CHECKS": True,
        **extra,
    }


@contextmanager
def databases(**aliases: dict[str, Any]) -> Iterator[None]:
    # Django warns that overriding DATABASES is unusual; the checks only read it.
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),
        override_settings(DATABASES={"default": SQLITE, **aliases}),
    ):
        yield


def run_check_command() -> str:
    out = io.StringIO()
    try:
        call_command("check", stdout=out, stderr=out)
    except SystemCheckError as exc:
        return out.getvalue() + str(exc)
    return out.getvalue()


def ids(messages: list[CheckMessage]) -> list[str]:
    return [str(m.id) for m in messages]


# (check, settings that trigger it, settings that do not, id)
DB_CASES: list[tuple[Callable[..., list[CheckMessage]], dict[str, Any], dict[str, Any], str]] = [
    (
        checks.check_conn_max_age,
        pg(CONN_MAX_AGE=0),
        pg(CONN_MAX_AGE=0, OPTIONS={"pool": True}),
        "lagscope.W001",
    ),
    (checks.check_conn_health_checks, pg(CONN_HEALTH_CHECKS=False), pg(), "lagscope.W002"),
    (
        checks.check_pool_with_max_age,
        pg(OPTIONS={"pool": {"min_size": 2}}),
        pg(CONN_MAX_AGE=0, OPTIONS={"pool": True}),
        "lagscope.E003",
    ),
    (
        checks.check_localhost,
        pg(HOST="localhost"),
        pg(HOST="127.0.0.1", OPTIONS={"gssencmode": "disable"}),
        "lagscope.W004",
    ),
    (
        checks.check_gssencmode,
        pg(HOST="127.0.0.1"),
        pg(HOST="::1", OPTIONS={"gssencmode": "disable"}),
        "lagscope.W005",
    ),
]


@pytest.mark.parametrize(
    ("check", "bad", "good", "check_id"), DB_CASES, ids=[c[3] for c in DB_CASES]
)
def test_database_checks(
    check: Callable[..., list[CheckMessage]],
    bad: dict[str, Any],
    good: dict[str, Any],
    check_id: str,
) -> None:
    with databases(main=bad):
        messages = check(None)
        command_output = run_check_command()
    assert ids(messages) == [check_id]
    assert messages[0].hint, "every check carries a hint"
    assert "'main'" in messages[0].msg
    assert check_id in command_output
    with databases(main=good):
        assert check(None) == []
        assert check_id not in run_check_command()


def test_sqlite_is_never_a_network_database() -> None:
    with databases(other={**SQLITE, "CONN_MAX_AGE": None, "HOST": "localhost"}):
        for check, *_ in DB_CASES:
            assert check(None) == []


def test_conn_max_age_default_is_zero() -> None:
    settings = pg()
    del settings["CONN_MAX_AGE"]
    with databases(main=settings):
        assert ids(checks.check_conn_max_age(None)) == ["lagscope.W001"]
        # CONN_MAX_AGE=0 is not "persistent": no health-check warning.
        assert checks.check_conn_health_checks(None) == []


MW_CASES = [
    (checks.check_middleware_first, [COMMON, MW], [MW, COMMON], "lagscope.W006"),
    (checks.check_common_middleware, [MW], [MW, COMMON], "lagscope.W007"),
    (checks.check_middleware_installed, [COMMON], [MW, COMMON], "lagscope.W008"),
]


@pytest.mark.parametrize(
    ("check", "bad", "good", "check_id"), MW_CASES, ids=[c[3] for c in MW_CASES]
)
def test_middleware_checks(
    check: Callable[..., list[CheckMessage]], bad: list[str], good: list[str], check_id: str
) -> None:
    with override_settings(MIDDLEWARE=bad):
        messages = check(None)
        command_output = run_check_command()
    assert ids(messages) == [check_id]
    assert messages[0].hint
    assert check_id in command_output
    with override_settings(MIDDLEWARE=good):
        assert check(None) == []
        assert check_id not in run_check_command()


def test_middleware_first_names_what_runs_before_it() -> None:
    with override_settings(MIDDLEWARE=[COMMON, MW]):
        (message,) = checks.check_middleware_first(None)
    assert message.hint is not None and COMMON in message.hint


def test_invalid_settings_are_an_error() -> None:
    with override_settings(LAGSCOPE={"UNTRUSTED": "everyone"}):
        messages = checks.check_settings(None)
        output = run_check_command()
    assert ids(messages) == ["lagscope.E001"]
    assert "UNTRUSTED" in messages[0].msg
    assert "lagscope.E001" in output
    with override_settings(LAGSCOPE={"UNTRUSTED": "total"}):
        assert checks.check_settings(None) == []


def test_suite_settings_are_clean() -> None:
    assert "lagscope." not in run_check_command()


@pytest.mark.parametrize("check", [checks.check_localhost, checks.check_gssencmode])
def test_an_empty_host_is_localhost_over_tcp_on_windows(
    check: Callable[..., list[CheckMessage]],
) -> None:
    # libpq on Windows has no Unix sockets: HOST '' connects to TCP localhost (::1 first).
    with databases(main=pg(HOST="")):
        on_windows = check(None, platform="win32")
        on_linux = check(None, platform="linux")
    assert len(on_windows) == 1 and "'main'" in on_windows[0].msg
    assert on_linux == []


def test_the_empty_host_warning_says_what_empty_means() -> None:
    with databases(main=pg(HOST="", OPTIONS={"gssencmode": "disable"})):
        (message,) = checks.check_localhost(None, platform="win32")
        assert checks.check_gssencmode(None, platform="win32") == []
    assert message.id == "lagscope.W004"
    assert "empty (on Windows: TCP to 'localhost')" in message.msg


def test_the_empty_host_rule_is_for_postgresql_only() -> None:
    mysql = {"ENGINE": "django.db.backends.mysql", "NAME": "app", "HOST": ""}
    with databases(main=mysql):
        assert checks.check_localhost(None, platform="win32") == []

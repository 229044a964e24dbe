"""The database half of serve: plans per alias, the edits to DATABASES, connect bounds."""

from __future__ import annotations

import pytest

from lagscope.serve.database import (
    POOL_RECONNECT_TIMEOUT_S,
    DbPlan,
    apply_database_plan,
    bound_connect_times,
    connect_timeout_s,
    describe_database,
    plan_database,
    tune_pool_recovery,
)

PG: dict[str, object] = {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}
LITE = {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"}


def _plan(entry: dict[str, object], **kw: object) -> DbPlan:
    args: dict[str, object] = {
        "django_version": (5, 2),
        "psycopg3": True,
        "psycopg_pool": True,
        "threads": 4,
        "db_connections": 16,
        "prewarm": True,
    }
    args.update(kw)
    return plan_database("default", entry, **args)  # type: ignore[arg-type]


def test_plan_native_pool_on_django_5_1_with_psycopg3() -> None:
    plan = _plan(PG)
    assert (plan.mode, plan.min_size, plan.max_size) == ("pool", 4, 4)
    entry: dict[str, object] = {**PG, "CONN_MAX_AGE": 600, "OPTIONS": {}}
    apply_database_plan(entry, plan, health_checks=True)
    assert entry["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert entry["CONN_HEALTH_CHECKS"] is True  # makes Django pass check_connection
    assert entry["OPTIONS"] == {"pool": {"min_size": 4, "max_size": 4, "timeout": 10.0}}


def test_plan_keeps_the_users_pool_options() -> None:
    entry: dict[str, object] = {**PG, "OPTIONS": {"pool": {"max_size": 9}}}
    apply_database_plan(entry, _plan(PG), health_checks=True)
    assert entry["OPTIONS"] == {"pool": {"min_size": 4, "max_size": 9, "timeout": 10.0}}


@pytest.mark.parametrize(
    ("entry", "kw", "needle"),
    [
        (PG, {"django_version": (4, 2)}, "Django 4.2 has no native pool"),
        (PG, {"psycopg3": False}, "psycopg 3 not installed"),
        (PG, {"psycopg_pool": False}, "psycopg_pool not installed"),
        (LITE, {}, "sqlite3 has no pool"),
        (PG, {"allow_pool": False}, "--no-db-pool"),
    ],
)
def test_plan_falls_back_to_persistent_connections(
    entry: dict[str, object], kw: dict[str, object], needle: str
) -> None:
    plan = _plan(entry, **kw)
    assert plan.mode == "persistent"
    assert needle in plan.why
    target = dict(entry)
    apply_database_plan(target, plan, health_checks=True)
    assert target["CONN_MAX_AGE"] is None
    assert target["CONN_HEALTH_CHECKS"] is True


def test_plan_none_when_prewarm_is_off() -> None:
    assert _plan(PG, prewarm=False).mode == "none"


@pytest.mark.parametrize(
    ("prewarm_timeout_s", "expected"), [(0.1, 2), (1.5, 2), (2.0, 2), (2.1, 3), (30.0, 10)]
)
def test_connect_timeout_is_whole_seconds_between_2_and_10(
    prewarm_timeout_s: float, expected: int
) -> None:
    assert connect_timeout_s(prewarm_timeout_s) == expected


def test_every_postgresql_alias_gets_a_connect_timeout_unless_it_has_one() -> None:
    databases: dict[str, dict[str, object]] = {
        "default": {**PG},
        "mine": {**PG, "OPTIONS": {"connect_timeout": 3}},
        "lite": {**LITE},
    }
    bound_connect_times(databases, 5)
    assert databases["default"]["OPTIONS"] == {"connect_timeout": 5}
    assert databases["mine"]["OPTIONS"] == {"connect_timeout": 3}  # the project's wins
    assert "OPTIONS" not in databases["lite"]


def test_pool_recovery_options_keep_the_projects_own() -> None:
    options: dict[str, object] = {}
    tune_pool_recovery(options)
    assert options == {"reconnect_timeout": POOL_RECONNECT_TIMEOUT_S}
    mine: dict[str, object] = {"reconnect_timeout": 60.0}
    tune_pool_recovery(mine)
    assert mine == {"reconnect_timeout": 60.0}


def test_describe_database_names_the_address_without_the_password() -> None:
    entry = {**PG, "HOST": "127.0.0.1", "PORT": "5433", "PASSWORD": "s3cret"}
    assert describe_database(entry) == "PostgreSQL 127.0.0.1:5433/x"
    assert describe_database(LITE) == "SQLite x.sqlite3"

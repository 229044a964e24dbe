"""The database hooks: connect-duration arithmetic (pure) and the wrapper's placement."""

from __future__ import annotations

import pytest
from django.db import connection

from lagscope.django import db


@pytest.mark.skipif(not db._MONOTONIC_FINE, reason="coarse monotonic clock: always the bound")
def test_connect_duration_exact_from_close_at() -> None:
    # Django set close_at = monotonic_at_connect_start + CONN_MAX_AGE.
    assert db.connect_duration_s(100.0, 0, 100.012, 0.5) == pytest.approx(0.012)
    assert db.connect_duration_s(700.0, 600, 100.012, 0.5) == pytest.approx(0.012)


def test_connect_duration_falls_back_to_the_upper_bound() -> None:
    # CONN_MAX_AGE=None: Django sets no close_at.
    assert db.connect_duration_s(None, None, 100.0, 0.25) == 0.25
    # A close_at that does not fit (negative, or longer than the bound) is not trusted.
    assert db.connect_duration_s(101.0, 0, 100.0, 0.25) == 0.25
    assert db.connect_duration_s(90.0, 0, 100.0, 0.25) == 0.25
    assert db.connect_duration_s(100.0, True, 100.01, 0.25) == 0.25


@pytest.mark.django_db
def test_query_observer_sits_first_and_survives_user_wrappers() -> None:
    calls: list[str] = []

    def user_wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        calls.append(sql)
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.execute_wrappers[0] is db._observe_query
    with connection.execute_wrapper(user_wrapper), connection.cursor() as cursor:
        cursor.execute("SELECT 2")
    # The user's block popped its own wrapper, not ours.
    assert connection.execute_wrappers == [db._observe_query]
    assert calls == ["SELECT 2"]

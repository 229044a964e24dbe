"""The one connection string parser: libpq's forms in, parameters out; an error never quotes
any part of the string, whatever libpq stumbled on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("psycopg")

from lagscope import dsn
from lagscope.errors import ExitCode

_SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=10, max_size=16).map(
    lambda s: "S3" + s
)


def test_both_forms_give_the_same_parameters() -> None:
    url = dsn.parse("postgresql://app:p%40ss@127.0.0.1:6543/db?application_name=x")
    kv = dsn.parse("host=127.0.0.1 port=6543 user=app password=p@ss dbname=db application_name=x")
    assert url.params == kv.params
    assert (url.password, url.host, url.port) == ("p@ss", "127.0.0.1", 6543)
    assert dsn.parse(r"password=TOP\ SECRET\ x").password == "TOP SECRET x"
    assert dsn.parse("dbname=d").port == 5432


def test_replace_and_django_settings() -> None:
    d = dsn.parse("postgresql://app:pw@h:5/db").replace(
        host="127.0.0.1", port="7", password=None, application_name="a"
    )
    assert "password" not in d.params
    assert dsn.django_settings(d) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "db",
        "USER": "app",
        "HOST": "127.0.0.1",
        "PORT": "7",
        "OPTIONS": {"application_name": "a"},
    }
    assert dsn.parse(dsn.conninfo(d.params)).params == d.params


@settings(deadline=None)  # the first example imports psycopg
@given(
    _SECRET,
    st.sampled_from(
        [
            "postgresql://app:p%zz{}@127.0.0.1:9/db",
            "host=h password=SEC {} dbname=db",
            "host=h password='{}",
            "postgresql://app:{}@[::1/db",
            "postgresql://app@h/db?x={}=1",
            "host=h port={} dbname=d user=u =",
            "{}",
            "postgresql://{}@h:99999999/db",
        ]
    ),
)
def test_a_parse_error_never_quotes_the_string(secret: str, form: str) -> None:
    value = form.format(secret)
    with pytest.raises(dsn.DsnError) as info:
        dsn.parse(value)
    assert info.value.exit_code == ExitCode.USAGE
    message = info.value.one_line()
    assert secret not in message and secret[3:] not in message and secret[:-3] not in message
    assert message.startswith("database: invalid connection string")


def test_control_characters_are_refused() -> None:
    with pytest.raises(dsn.DsnError, match="control characters"):
        dsn.parse("host=h\ndbname=d")

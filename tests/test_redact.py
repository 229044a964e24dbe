"""The redaction rule, tested against the class: any secret-looking name, in any case and any
surrounding, in headers, URL queries, command lines and connection strings; URL userinfo
whatever else the URL holds; a connection string that does not parse is hidden whole."""

from __future__ import annotations

import contextlib
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lagscope import redact
from lagscope.redact import REDACTED, SECRET_WORDS

_TOKEN_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_AFFIX = st.text(_TOKEN_CHARS, max_size=8)
_SECRET = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=12, max_size=20).map(
    lambda s: "S3" + s
)


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    """Any name with a secret word inside it, in any case: X-Auth-Token, sessionid, ..."""
    word = draw(st.sampled_from(SECRET_WORDS))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in word)
    return draw(_AFFIX) + cased + draw(_AFFIX)


_PLAIN_NAMES = st.sampled_from(
    ["Accept", "Host", "Content-Type", "X-Request-Id", "User-Agent", "page", "q", "Keep-Alive"]
)


@given(secret_names(), _SECRET)
def test_any_secret_looking_header_is_redacted(name: str, value: str) -> None:
    assert redact.headers([(name, value), ("Accept", "x")]) == ((name, REDACTED), ("Accept", "x"))


@given(_PLAIN_NAMES, st.text(max_size=20))
def test_other_headers_are_kept(name: str, value: str) -> None:
    assert redact.headers([(name, value)]) == ((name, value),)


@given(secret_names(), _SECRET, st.sampled_from(["-H", "--header"]))
def test_any_secret_header_argument_is_redacted(name: str, value: str, flag: str) -> None:
    for argv in (
        ["lagscope", "probe", "http://h/", flag, f"{name}: {value}"],
        ["lagscope", "probe", "http://h/", f"-H{name}: {value}"],
        ["lagscope", "probe", "http://h/", f"--header={name}:{value}"],
    ):
        shown = " ".join(redact.command_line(argv))
        assert value not in shown and REDACTED in shown and name in shown


@given(
    st.text(_TOKEN_CHARS, min_size=1, max_size=8),
    _SECRET,
    st.sampled_from(["h", "127.0.0.1:8000", "[::1]:9", "[::1/oops", "h:notaport"]),
    st.sampled_from(["", "/", "/p?x=1", "/a/b#f", "?q=2"]),
    st.sampled_from(["http", "https", "postgresql"]),
)
def test_userinfo_passwords_are_redacted_in_any_url(
    user: str, password: str, host: str, tail: str, scheme: str
) -> None:
    """Even a URL a parser would refuse (an unclosed [, a bad port)."""
    url = f"{scheme}://{user}:{quote(password)}@{host}{tail}"
    shown = redact.url(url)
    assert password not in shown
    assert shown == f"{scheme}://{user}:{REDACTED}@{host}{tail}"
    with contextlib.suppress(ValueError):  # still the same URL to a parser
        parts = urlsplit(url)
        assert (parts.hostname, parts.port, parts.path) == (
            urlsplit(shown).hostname,
            urlsplit(shown).port,
            urlsplit(shown).path,
        )
    assert redact.command_line(["lagscope", "diagnose", url])[2] == shown
    assert password not in redact.text(f"cannot reach {url}: refused")


@given(secret_names(), _SECRET, st.sampled_from(["", "a=1&", "x&"]), st.sampled_from(["", "#f"]))
def test_secret_query_values_are_redacted(name: str, value: str, before: str, frag: str) -> None:
    url = f"http://h/p?{before}{quote(name)}={value}&page=2{frag}"
    shown = redact.url(url)
    assert value not in shown
    assert shown == f"http://h/p?{before}{quote(name)}={REDACTED}&page=2{frag}"
    assert redact.command_line(["lagscope", "probe", url])[2] == shown
    assert redact.text(f"GET {url} failed") == f"GET {shown} failed"


def test_urls_without_secrets_are_unchanged() -> None:
    for url in (
        "http://h/p?q=1&page=2#x",
        "https://[::1]:8443/",
        "not a url",
        "http://h/?a",
        "postgresql://app@127.0.0.1:5432/items",
    ):
        assert redact.url(url) == url


@given(_SECRET, st.sampled_from(["http", "https", "HTTPS", "ws"]))
def test_a_userinfo_without_password_is_masked_whole(token: str, scheme: str) -> None:
    """A bearer token in the user part (https://TOKEN@host/) is a secret like a password."""
    url = f"{scheme}://{quote(token, safe='')}@127.0.0.1:8000/p?page=2"
    shown = redact.url(url)
    assert shown == f"{scheme}://{REDACTED}@127.0.0.1:8000/p?page=2"
    assert redact.command_line(["lagscope", "probe", url])[2] == shown


@given(secret_names(), _SECRET)
def test_secret_assignments_in_free_text_are_redacted(name: str, value: str) -> None:
    for text in (f"failed: {name}={value} x", f"{name} = '{value} more'", f"{name}={value}"):
        assert value not in redact.text(text)


def test_free_text_backslash_escaped_password_is_redacted_whole() -> None:
    # libpq reads TOP\ SECRETPW\ x as one value, "TOP SECRETPW x".
    shown = redact.text(r"host=h password=TOP\ SECRETPW\ x dbname=d")
    assert "SECRETPW" not in shown and shown.endswith("dbname=d")


@settings(deadline=None)  # the first example imports psycopg
@given(_SECRET, st.sampled_from(["--database", "--database="]))
def test_database_arguments_never_show_the_password(password: str, flag: str) -> None:
    pytest.importorskip("psycopg")
    escaped = password[:4] + "\\ " + password[4:]
    for value in (
        f"postgresql://app:{password}@127.0.0.1:5432/db",
        f"host=127.0.0.1 user=app password={password} dbname=db",
        f"host=127.0.0.1 password={escaped} dbname=db",
        f"host=127.0.0.1 password='{password} x' dbname=db",
        f"postgresql://app:p%zz{password}@127.0.0.1:9/db",  # bad escape: hidden whole
        f"host=127.0.0.1 password={password[:5]} {password[5:]} dbname=db",  # unparsable
        f"password='{password}",  # unterminated quote
    ):
        args = [flag, value] if flag == "--database" else [flag + value]
        shown = " ".join(redact.command_line(["lagscope", "diagnose", "http://h/", *args]))
        assert password not in shown and password[5:] not in shown, shown
        assert password[:-4] not in shown and password[4:] not in shown


def test_a_parsed_connection_string_is_shown_without_secrets() -> None:
    pytest.importorskip("psycopg")
    shown = redact.dsn("postgresql://app:pw1234@127.0.0.1:5/db?sslpassword=k9k9k9&sslmode=off")
    assert "pw1234" not in shown and "k9k9k9" not in shown
    assert "host=127.0.0.1" in shown and "sslmode=off" in shown and "dbname=db" in shown
    assert redact.dsn("sqlite") == "sqlite"
    assert redact.dsn("postgresql://app:p%zzpw@h/db") == REDACTED


@given(
    secret=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=3),
    word=st.sampled_from(["expired", "timeout", "connection", "refused"]),
)
def test_a_short_secret_is_masked_where_it_stands_alone_not_inside_words(
    secret: str, word: str
) -> None:
    message = f"{word} (password {secret}): {word}"
    shown = redact.text(message, [secret])
    assert f"password {redact.REDACTED})" in shown
    assert shown.count(word) == 2  # the words around it are whole


def test_a_long_secret_is_masked_wherever_it_occurs() -> None:
    assert redact.text("xxSECRETPWxx", ["SECRETPW"]) == f"xx{redact.REDACTED}xx"

"""HOST:PORT parsing and the loopback rules, with and without DNS (a resolver passed in)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lagscope.addresses import (
    AddressError,
    format_host_port,
    is_localhost_name,
    is_loopback_literal,
    parse_host_port,
    resolves_to_loopback,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("  localhost:80 ", ("localhost", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("app_server.internal:1", ("app_server.internal", 1)),
        ("host:0", ("host", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("nohost", "missing :PORT"),
        ("::1:80", "brackets"),
        ("[::1]80", "form [::1]:8000"),
        ("[nope]:80", "not an IPv6 address"),
        (":80", "missing or invalid host"),
        ("a b:80", "missing or invalid host"),
        ("h;evil:80", "missing or invalid host"),
        ("h:65536", "port must be 0-65535"),
        ("h:-1", "port must be 0-65535"),
        ("h:٣", "port must be 0-65535"),  # a non-ASCII digit
        ("h:" + "9" * 5000, "port must be 0-65535"),
    ],
)
def test_parse_host_port_refuses(text: str, why: str) -> None:
    with pytest.raises(AddressError, match=why.replace("[", r"\[").replace("]", r"\]")):
        parse_host_port(text)


def test_parse_host_port_options() -> None:
    assert parse_host_port(":9", empty_host="127.0.0.1") == ("127.0.0.1", 9)
    with pytest.raises(AddressError, match="port must be 1-65535"):
        parse_host_port("h:0", min_port=1)


@given(st.text(max_size=40))
def test_parse_host_port_never_fails_otherwise(text: str) -> None:
    try:
        host, port = parse_host_port(text, empty_host="127.0.0.1")
    except AddressError:
        return
    assert 0 <= port <= 65535
    assert parse_host_port(format_host_port(host, port)) == (host, port)


def test_loopback_literals_need_no_dns() -> None:
    for yes in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "::ffff:127.0.0.1", "::1%lo"):
        assert is_loopback_literal(yes), yes
    for no in ("localhost", "0.0.0.0", "::", "10.0.0.1", "", "example.com", "[::1"):
        assert not is_loopback_literal(no), no


def test_localhost_names() -> None:
    assert is_localhost_name("localhost") and is_localhost_name("LocalHost.")
    assert is_localhost_name("app.localhost")
    assert not is_localhost_name("localhost.example.com") and not is_localhost_name("127.0.0.1")


def test_resolves_to_loopback_asks_the_resolver_for_names_only() -> None:
    asked: list[str] = []

    def resolver(answer: list[str]) -> Callable[[str], list[str]]:
        def resolve(host: str) -> list[str]:
            asked.append(host)
            return answer

        return resolve

    assert resolves_to_loopback("127.0.0.1", resolver(["10.0.0.1"]))
    assert not resolves_to_loopback("10.0.0.1", resolver(["127.0.0.1"]))
    assert asked == []
    assert resolves_to_loopback("localhost", resolver(["127.0.0.1", "::1"]))
    assert not resolves_to_loopback("mixed", resolver(["127.0.0.1", "10.0.0.1"]))
    assert not resolves_to_loopback("empty", resolver([]))
    assert asked == ["localhost", "mixed", "empty"]

    def fail(host: str) -> list[str]:
        raise OSError("no such name")

    assert not resolves_to_loopback("nowhere", fail)

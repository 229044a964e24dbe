"""Validation of user input before any socket is opened: each rejection is exit code 2."""

from __future__ import annotations

import socket

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.options import (
    ProbeOptions,
    is_loopback_host,
    parse_family,
    parse_header,
    parse_resolve,
    parse_url,
)


def test_parse_url() -> None:
    t = parse_url("http://example.com/a/b?x=1")
    assert (t.scheme, t.host, t.port, t.target, t.host_header) == (
        "http",
        "example.com",
        80,
        "/a/b?x=1",
        "example.com",
    )
    t6 = parse_url("https://[::1]:8443")
    assert (t6.host, t6.port, t6.target, t6.host_header) == ("::1", 8443, "/", "[::1]:8443")


@pytest.mark.parametrize(
    "url", ["ftp://x/", "example.com", "http://", "http://h:99999/", "http://a b/", "mailto:x@y"]
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(LagscopeError) as err:
        parse_url(url)
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.phase == "url"


def test_unicode_path_and_query_are_percent_encoded() -> None:
    t = parse_url("http://127.0.0.1/caf\u00e9/a%20b?q=\u00e9&x=1")
    assert t.target == "/caf%C3%A9/a%20b?q=%C3%A9&x=1"


def test_parse_header() -> None:
    assert parse_header("X-Thing:  a: b ") == ("X-Thing", "a: b")
    for bad in ["no colon", ": empty", "Bad Name: v"]:
        with pytest.raises(LagscopeError):
            parse_header(bad)


def test_parse_resolve_forms() -> None:
    assert parse_resolve("localhost:::1") == ("localhost", ("::1",))
    assert parse_resolve("LocalHost:[::1],127.0.0.1") == ("localhost", ("::1", "127.0.0.1"))
    assert parse_resolve("api.test:8080:127.0.0.2") == ("api.test", ("127.0.0.2",))
    assert parse_resolve("api.test:443:[::1],127.0.0.1") == ("api.test", ("::1", "127.0.0.1"))
    for bad in ["nohost", "h:", "h:not-an-ip", ":127.0.0.1"]:
        with pytest.raises(LagscopeError):
            parse_resolve(bad)


def test_loopback_detection_is_conservative() -> None:
    assert is_loopback_host("127.0.0.5")
    assert is_loopback_host("::1")
    assert is_loopback_host("localhost")
    assert not is_loopback_host("example.com")
    assert not is_loopback_host("10.0.0.1")
    assert is_loopback_host("example.com", ("127.0.0.1",))
    assert not is_loopback_host("localhost", ("127.0.0.1", "192.0.2.1"))


def test_bounds_are_enforced() -> None:
    t = parse_url("http://127.0.0.1/")
    for kwargs in [
        {"cold": -1},
        {"cold": 10**6},
        {"warm": 10**6},
        {"cold": 0, "warm": 0},
        {"timeout_s": 0},
        {"max_time_s": 10**6},
        {"rate_per_s": 0},
    ]:
        with pytest.raises(LagscopeError) as err:
            ProbeOptions(target=t, **kwargs)  # type: ignore[arg-type]
        assert err.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_body_bytes": -1}, "--max-body must be at least 0"),
        ({"rate_per_s": float("nan")}, "--rate must be a finite number"),
        ({"rate_per_s": 1e-300}, "--rate must be at least 0.001"),
        ({"timeout_s": float("inf")}, "--timeout must be a finite number"),
        ({"cold": True}, "--cold must be int"),
        ({"method": "get"}, "invalid method 'get'"),
        ({"method": "CONNECT"}, "CONNECT is not supported"),
        ({"headers": (("Bad Name", "x"),)}, "invalid header name"),
        ({"headers": (("X-A", "line\nbreak"),)}, "printable ASCII"),
        ({"headers": (("Content-Length", "3"),)}, "set by the probe"),
        ({"family": 99}, "family must be"),
    ],
)
def test_the_python_api_refuses_what_the_cli_refuses(
    kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(LagscopeError) as err:
        ProbeOptions(target=parse_url("http://127.0.0.1/"), **kwargs)  # type: ignore[arg-type]
    assert err.value.exit_code == ExitCode.USAGE
    assert needle in err.value.one_line()


def test_parse_family_maps_the_flags_and_refuses_both() -> None:
    assert parse_family(False, False) == socket.AF_UNSPEC
    assert parse_family(True, False) == socket.AF_INET
    assert parse_family(False, True) == socket.AF_INET6
    with pytest.raises(LagscopeError, match="-4 and -6 exclude each other") as info:
        parse_family(True, True)
    assert info.value.exit_code == ExitCode.USAGE


def test_probe_and_diagnose_take_the_same_request_flags() -> None:
    # One declaration (lagscope.probe.flags) serves both commands.
    import click

    from lagscope.diagnose.cli import diagnose_command
    from lagscope.probe.cli import probe

    def request_flags(command: click.Command) -> dict[str, tuple[str, ...]]:
        wanted = {"headers", "ipv4", "ipv6", "insecure", "resolves"}
        return {
            str(p.name): (*p.opts, str(p.help))
            for p in command.params
            if isinstance(p, click.Option) and p.name in wanted
        }

    assert request_flags(probe) == request_flags(diagnose_command)
    assert set(request_flags(probe)) == {"headers", "ipv4", "ipv6", "insecure", "resolves"}

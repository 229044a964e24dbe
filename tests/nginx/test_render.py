"""The settings table and the renderer, without sockets or processes."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath

import pytest

from lagscope.errors import ExitCode, LagscopeError
from lagscope.nginx import config as nginx_config_module
from lagscope.nginx.config import (
    Endpoint,
    NginxSettings,
    check_consistency,
    expand_listen,
    parse_endpoint,
    upstream_server,
)
from lagscope.nginx.render import UPSTREAM_NAME, NginxConfig, render
from lagscope.settings_table import rows

UP = Endpoint("127.0.0.1", 8000)
LISTEN = (Endpoint("127.0.0.1", 8080),)


def _block(text: str, header: str) -> str:
    """The body of the first ``header {`` block (brace-balanced)."""
    start = text.index(header + " {")
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    raise AssertionError(f"unbalanced block {header}")


def _directives(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_upstream_keepalive_has_all_three_pieces_in_the_right_blocks() -> None:
    text = render(NginxConfig(upstream=UP, listen=LISTEN))
    upstream = _block(text, f"upstream {UPSTREAM_NAME}")
    location = _block(text, "location /")
    assert "server 127.0.0.1:8000;" in _directives(upstream)
    assert "keepalive 16;" in _directives(upstream)
    assert f"proxy_pass http://{UPSTREAM_NAME};" in _directives(location)
    assert "proxy_http_version 1.1;" in _directives(location)
    assert 'proxy_set_header Connection "";' in _directives(location)


def test_forwarding_and_queue_time_headers() -> None:
    location = _directives(_block(render(NginxConfig(upstream=UP, listen=LISTEN)), "location /"))
    assert 'proxy_set_header X-Request-Start "t=${msec}";' in location
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in location
    assert "proxy_set_header Host $lagscope_host;" in location


def test_every_table_value_reaches_the_config() -> None:
    # Change every setting to a distinct value and find each one in the output.
    fields = dataclasses.fields(NginxSettings)
    custom = NginxSettings(**{f.name: 100 + i for i, f in enumerate(fields)})
    text = render(NginxConfig(upstream=UP, listen=LISTEN, settings=custom))
    for i, f in enumerate(fields):
        assert re.search(rf"\b{100 + i}[skm]?\b", text), f.name
    upstream = _directives(_block(text, f"upstream {UPSTREAM_NAME}"))
    assert f"keepalive_timeout {custom.upstream_keepalive_timeout_s}s;" in upstream
    server = _directives(_block(text, "server"))
    assert f"keepalive_timeout {custom.client_keepalive_timeout_s}s;" in server


def test_busy_buffers_stay_below_all_buffers_but_one() -> None:
    s = NginxSettings(proxy_buffers_count=4, proxy_buffer_size_k=8)
    text = render(NginxConfig(upstream=UP, listen=LISTEN, settings=s))
    busy = int(re.search(r"proxy_busy_buffers_size (\d+)k;", text).group(1))  # type: ignore[union-attr]
    assert s.proxy_buffer_size_k <= busy < (s.proxy_buffers_count - 1) * s.proxy_buffer_size_k


def test_keepalive_zero_drops_the_pool() -> None:
    text = render(
        NginxConfig(upstream=UP, listen=LISTEN, settings=NginxSettings(upstream_keepalive=0))
    )
    assert not any(
        d.startswith("keepalive") for d in _directives(_block(text, "upstream lagscope_app"))
    )


def test_render_is_deterministic_and_balanced() -> None:
    cfg = NginxConfig(upstream=UP, listen=LISTEN, prefix=PurePosixPath("/tmp/x y"))
    text = render(cfg)
    assert text == render(cfg)
    assert text.count("{") == text.count("}")
    assert text.endswith("}\n")
    # Paths are quoted, so a space in the prefix survives.
    assert 'pid "/tmp/x y/nginx.pid";' in text
    assert 'proxy_temp_path "/tmp/x y/proxy_temp";' in text


def test_plain_config_leaves_system_paths_alone() -> None:
    text = render(NginxConfig(upstream=UP, listen=LISTEN))
    assert "pid " not in text
    assert "_temp_path" not in text
    assert text.lstrip().startswith("#")
    assert "worker_processes 1;" in _directives(text)


def test_snippet_has_no_main_or_http_context() -> None:
    text = render(NginxConfig(upstream=UP, listen=LISTEN, snippet=True))
    directives = _directives(text)
    assert not any(
        d.startswith(("worker_processes", "events", "http {", "pid")) for d in directives
    )
    assert f"upstream {UPSTREAM_NAME} {{" in directives
    with pytest.raises(ValueError, match="snippet"):
        NginxConfig(upstream=UP, listen=LISTEN, snippet=True, prefix=PurePosixPath("/tmp"))


def test_localhost_listens_on_both_loopbacks_but_upstream_is_one_address() -> None:
    listen = expand_listen(parse_endpoint("localhost:8080", "listen"))
    assert listen == (Endpoint("127.0.0.1", 8080), Endpoint("::1", 8080))
    up = parse_endpoint("localhost:8000", "upstream")
    text = render(NginxConfig(upstream=up, listen=listen))
    assert "listen 127.0.0.1:8080;" in text
    assert "listen [::1]:8080;" in text
    assert _directives(_block(text, "upstream lagscope_app"))[1] == "server 127.0.0.1:8000;"
    assert upstream_server(Endpoint("app.internal", 9)) == Endpoint("app.internal", 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", Endpoint("127.0.0.1", 8000)),
        ("[::1]:8000", Endpoint("::1", 8000)),
        ("app-1.internal:65535", Endpoint("app-1.internal", 65535)),
        (" localhost:1 ", Endpoint("localhost", 1)),
        ("http://127.0.0.1:8000", Endpoint("127.0.0.1", 8000)),
        ("http://[::1]:8000/", Endpoint("::1", 8000)),
    ],
)
def test_parse_endpoint_accepts(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text, "upstream") == expected


@pytest.mark.parametrize(
    "text",
    [
        "8000",
        "host:",
        ":8000",
        "host:0",
        "host:65536",
        "host:80x",
        "::1:80",
        "[::1]80",
        "[nothost]:80",
        "a b:80",
        "a;b:80",
        "a{b:80",
        'a"b:80',
        "-x:80",
        "https://h:80",
        "http://h:80/path",
    ],
)
def test_parse_endpoint_rejects_with_usage_error(text: str) -> None:
    with pytest.raises(LagscopeError) as info:
        parse_endpoint(text, "upstream")
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.phase == "upstream"
    assert "\n" not in info.value.one_line()


def test_ipv6_endpoint_renders_in_brackets() -> None:
    assert str(Endpoint("::1", 80)) == "[::1]:80"
    assert str(Endpoint("10.0.0.1", 80)) == "10.0.0.1:80"


def test_upstream_keepalive_timeout_must_stay_below_server_idle_timeout() -> None:
    check_consistency(NginxSettings(upstream_keepalive_timeout_s=59), 60)
    with pytest.raises(LagscopeError) as info:
        check_consistency(NginxSettings(upstream_keepalive_timeout_s=60), 60)
    assert info.value.exit_code == ExitCode.USAGE
    # Without a pool there is nothing to keep idle, so no constraint.
    check_consistency(NginxSettings(upstream_keepalive=0, upstream_keepalive_timeout_s=999), 60)


def test_default_settings_are_consistent_with_lagscope_serve() -> None:
    check_consistency(NginxSettings(), nginx_config_module.SERVER_IDLE_TIMEOUT_S)
    assert NginxSettings().client_keepalive_timeout_s > 300  # browsers' idle timeout


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("upstream_keepalive", -1),
        ("proxy_read_timeout_s", 0),
        ("proxy_buffers_count", 3),
        ("worker_processes", True),
    ],
)
def test_settings_reject_out_of_range(field: str, value: int) -> None:
    with pytest.raises(LagscopeError) as info:
        NginxSettings(**{field: value})
    assert info.value.exit_code == ExitCode.USAGE
    assert "--" + field.replace("_", "-") in info.value.message


def test_settings_table_documents_every_field() -> None:
    table = rows(NginxSettings)
    assert [r.name for r in table] == [f.name for f in dataclasses.fields(NginxSettings)]
    for row in table:
        assert row.spec.unit
        assert row.spec.extra["directive"]
        assert len(row.spec.why) > 20
        assert isinstance(row.default, int)
        assert row.spec.minimum is not None and row.default >= row.spec.minimum
        assert row.spec.maximum is None or row.default <= row.spec.maximum
        assert row.flag == "--" + row.name.replace("_", "-")


def test_server_idle_timeout_comes_from_serves_table() -> None:
    serve_settings = pytest.importorskip("lagscope.serve.settings")
    resolved = serve_settings.resolve({}, serve_settings.Host.current())
    assert int(resolved.values["channel_timeout"]) == nginx_config_module.SERVER_IDLE_TIMEOUT_S
    assert NginxSettings().upstream_keepalive_timeout_s < nginx_config_module.SERVER_IDLE_TIMEOUT_S

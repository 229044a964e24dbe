"""Rendering an nginx config from the settings table. Pure: a :class:`NginxConfig` in, text out.

This module owns the shape of the generated config: the ``upstream`` block with its
keep-alive pool, the three pieces that make upstream keep-alive actually work (``keepalive``,
``proxy_http_version 1.1``, ``proxy_set_header Connection ""``; without any one of them
nginx < 1.29.7 opens a new upstream connection per request), the forwarded headers, and
``X-Request-Start`` for queue time. Every number comes from
:class:`~lagscope.nginx.config.NginxSettings`.

With :class:`Tls` the listeners speak TLS with HTTP/2 (``http2 on`` from nginx 1.25.1,
``listen ... ssl http2`` before it), and a plain ``http://`` request on that port (nginx's
status 497) is redirected to ``https://``; the upstream stays plain HTTP/1.1 with keep-alive.

Two shapes: a whole ``nginx.conf`` (optionally self-contained under a prefix directory so
that a non-root user can run nginx from a temp dir), or a snippet to include inside an
existing ``http {}`` block (``/etc/nginx/conf.d/``).
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from lagscope import __version__
from lagscope.nginx.config import Endpoint, NginxSettings, upstream_server
from lagscope.settings_table import rows

__all__ = ["HTTP2_ON_SINCE", "UPSTREAM_NAME", "NginxConfig", "Tls", "render"]

# nginx 1.25.1 made HTTP/2 a server-level `http2 on;` and deprecated `listen ... http2`.
HTTP2_ON_SINCE = (1, 25, 1)

UPSTREAM_NAME = "lagscope_app"

_INDENT = "    "


@dataclass(frozen=True)
class Tls:
    """TLS on the listeners: the certificate chain and key, and the nginx version the
    HTTP/2 syntax is written for (None: unknown, the older ``listen ... http2``, which
    nginx >= 1.25.1 still accepts with a deprecation warning)."""

    cert: PurePath
    key: PurePath
    nginx_version: tuple[int, int, int] | None = None

    @property
    def http2_on(self) -> bool:
        return self.nginx_version is not None and self.nginx_version >= HTTP2_ON_SINCE


@dataclass(frozen=True)
class NginxConfig:
    """Everything one rendering needs.

    ``prefix``: when set, the config is self-contained: pid, logs and temp paths live under
    it, so nginx runs without root (``nginx -p PREFIX -c PREFIX/nginx.conf``).
    ``snippet``: render only what goes inside ``http {}`` (exclusive with ``prefix``).
    """

    upstream: Endpoint
    listen: Sequence[Endpoint]
    settings: NginxSettings = dataclasses.field(default_factory=NginxSettings)
    prefix: PurePath | None = None
    snippet: bool = False
    tls: Tls | None = None

    def __post_init__(self) -> None:
        if self.prefix is not None and self.snippet:
            raise ValueError("a snippet has no prefix: pid, logs and temp paths are global")
        if not self.listen:
            raise ValueError("at least one listen address is needed")


def _quote(path: PurePath) -> str:
    # nginx takes forward slashes on Windows too; quote so spaces survive.
    text = path.as_posix().replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _why(name: str) -> list[str]:
    row = next(r for r in rows(NginxSettings) if r.name == name)
    first = row.spec.why.split(". ")[0].rstrip(".")
    return textwrap.wrap(f"[{row.spec.unit}] {first}.", width=88)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append(f"{_INDENT * self.depth}{text}" if text else "")

    def directive(self, text: str, why: str | None = None) -> None:
        if why:
            for text_line in _why(why):
                self.line(f"# {text_line}")
        self.line(f"{text};")

    def open(self, text: str) -> None:
        self.line(f"{text} {{")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.line("}")


def _http_body(w: _Writer, cfg: NginxConfig) -> None:
    s = cfg.settings
    w.line(
        'log_format lagscope \'$remote_addr [$time_local] "$request" $status '
        "$body_bytes_sent rt=$request_time'"
    )
    # upstream_connect_time is 0.000 (or "-") on a reused pooled connection, so this log
    # line shows at a glance whether the pool works.
    w.line(
        f"{_INDENT}' uct=$upstream_connect_time urt=$upstream_response_time "
        "creq=$connection_requests';"
    )
    w.line()
    w.line("# Host as the client sent it (with its port), or the server name for HTTP/1.0.")
    w.open("map $http_host $lagscope_host")
    w.directive('"" $host')
    w.directive("default $http_host")
    w.close()
    w.line()
    up = upstream_server(cfg.upstream)
    w.open(f"upstream {UPSTREAM_NAME}")
    w.directive(f"server {up}")
    if s.upstream_keepalive:
        w.line("# Upstream keep-alive, part 1 of 3: the pool (parts 2 and 3 are in location /).")
        w.directive(f"keepalive {s.upstream_keepalive}", "upstream_keepalive")
        w.directive(
            f"keepalive_timeout {s.upstream_keepalive_timeout_s}s",
            "upstream_keepalive_timeout_s",
        )
        w.directive(
            f"keepalive_requests {s.upstream_keepalive_requests}",
            "upstream_keepalive_requests",
        )
        w.directive(f"keepalive_time {s.upstream_keepalive_time_s}s", "upstream_keepalive_time_s")
    w.close()
    w.line()
    w.open("server")
    tls = cfg.tls
    for ep in cfg.listen:
        if tls is None:
            w.directive(f"listen {ep}")
        else:
            w.directive(f"listen {ep} ssl" + ("" if tls.http2_on else " http2"))
    w.directive("server_name _")
    if tls is not None:
        _tls(w, tls)
    if cfg.prefix is not None:
        w.directive(f"access_log {_quote(cfg.prefix / 'access.log')} lagscope")
    w.line()
    w.directive(f"keepalive_timeout {s.client_keepalive_timeout_s}s", "client_keepalive_timeout_s")
    w.directive(f"keepalive_requests {s.client_keepalive_requests}", "client_keepalive_requests")
    w.directive(f"client_header_timeout {s.client_header_timeout_s}s", "client_header_timeout_s")
    w.directive(f"client_body_timeout {s.client_body_timeout_s}s", "client_body_timeout_s")
    w.directive(f"client_max_body_size {s.client_max_body_size_m}m", "client_max_body_size_m")
    w.line("# Headers and body go out without waiting for ACKs (Nagle + delayed ACK).")
    w.directive("tcp_nodelay on")
    w.line()
    w.open("location /")
    w.directive(f"proxy_pass http://{UPSTREAM_NAME}")
    w.line("# Upstream keep-alive, parts 2 and 3: HTTP/1.1 and no 'Connection: close'.")
    w.directive("proxy_http_version 1.1")
    w.directive('proxy_set_header Connection ""')
    w.directive("proxy_set_header Host $lagscope_host")
    w.directive("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for")
    w.directive("proxy_set_header X-Forwarded-Proto $scheme")
    w.line("# What `lagscope serve --trusted-proxy ADDR` honours from this nginx (and only it).")
    w.directive("proxy_set_header X-Forwarded-Host $host")
    w.directive("proxy_set_header X-Forwarded-Port $server_port")
    w.directive("proxy_set_header X-Real-IP $remote_addr")
    w.line("# When nginx accepted the request (epoch seconds.millis): the app's queue time.")
    w.directive('proxy_set_header X-Request-Start "t=${msec}"')
    w.line()
    w.directive(f"proxy_connect_timeout {s.proxy_connect_timeout_s}s", "proxy_connect_timeout_s")
    w.directive(f"proxy_read_timeout {s.proxy_read_timeout_s}s", "proxy_read_timeout_s")
    w.directive(f"proxy_send_timeout {s.proxy_send_timeout_s}s", "proxy_send_timeout_s")
    w.line("# Buffer whole requests and responses so slow clients never hold an app thread.")
    w.directive("proxy_request_buffering on")
    w.directive("proxy_buffering on")
    w.directive(f"proxy_buffer_size {s.proxy_buffer_size_k}k", "proxy_buffer_size_k")
    w.directive(
        f"proxy_buffers {s.proxy_buffers_count} {s.proxy_buffer_size_k}k", "proxy_buffers_count"
    )
    # nginx requires busy buffers < (count - 1) * size; two buffers is its own default.
    w.directive(f"proxy_busy_buffers_size {2 * s.proxy_buffer_size_k}k")
    w.close()
    w.close()


def _tls(w: _Writer, tls: Tls) -> None:
    w.line()
    w.line("# TLS with HTTP/2: a browser sends every request of a page down one connection,")
    w.line("# so the page pays a new connection's cost once (over HTTP/1.1: up to 6 times).")
    if tls.http2_on:
        w.directive("http2 on")
    w.directive(f"ssl_certificate {_quote(tls.cert)}")
    w.directive(f"ssl_certificate_key {_quote(tls.key)}")
    w.line("# TLS 1.2 too: Windows 10's Schannel clients (curl.exe, .NET Framework) lack 1.3.")
    w.directive("ssl_protocols TLSv1.2 TLSv1.3")
    w.line("# A client that comes back resumes its session: no full handshake.")
    w.directive("ssl_session_cache shared:lagscope_tls:1m")
    w.directive("ssl_session_timeout 1h")
    w.line("# A plain http:// request on this port (nginx's 497): redirected to https://.")
    w.directive("error_page 497 =301 https://$host:$server_port$request_uri")


def render(cfg: NginxConfig) -> str:
    """The config text for ``cfg``; deterministic, ends with a newline."""
    s = cfg.settings
    w = _Writer()
    w.line(f"# Generated by lagscope nginx-config {__version__} for upstream {cfg.upstream}.")
    w.line("# Every number comes from lagscope's nginx settings table; see docs/nginx.md.")
    if cfg.snippet:
        w.line("# Snippet: include it inside the http {} block (e.g. /etc/nginx/conf.d/).")
        w.line()
        _http_body(w, cfg)
        return "\n".join(w.lines) + "\n"
    if cfg.prefix is not None:
        w.line(f"# Self-contained: nginx -p {cfg.prefix.as_posix()} -c nginx.conf")
    w.line()
    w.directive(f"worker_processes {s.worker_processes}", "worker_processes")
    if cfg.prefix is not None:
        w.directive(f"pid {_quote(cfg.prefix / 'nginx.pid')}")
        w.directive(f"error_log {_quote(cfg.prefix / 'error.log')} warn")
    w.line()
    w.open("events")
    w.directive(f"worker_connections {s.worker_connections}", "worker_connections")
    w.close()
    w.line()
    w.open("http")
    w.directive("default_type application/octet-stream")
    if cfg.prefix is not None:
        w.line("# Temp paths under the prefix, so a non-root user can run this config.")
        for directive, sub in (
            ("client_body_temp_path", "client_body_temp"),
            ("proxy_temp_path", "proxy_temp"),
            ("fastcgi_temp_path", "fastcgi_temp"),
            ("uwsgi_temp_path", "uwsgi_temp"),
            ("scgi_temp_path", "scgi_temp"),
        ):
            w.directive(f"{directive} {_quote(cfg.prefix / sub)}")
    w.line()
    _http_body(w, cfg)
    w.close()
    return "\n".join(w.lines) + "\n"

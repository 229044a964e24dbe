"""``lagscope nginx-config``: an nginx config that keeps upstream connections alive.

The settings table is :mod:`lagscope.nginx.config`, the pure renderer
:mod:`lagscope.nginx.render`, and the command line :mod:`lagscope.nginx.cli`.
"""

from __future__ import annotations

from lagscope.nginx.config import Endpoint, NginxSettings, docs_table, parse_endpoint
from lagscope.nginx.render import NginxConfig, render

__all__ = ["Endpoint", "NginxConfig", "NginxSettings", "docs_table", "parse_endpoint", "render"]

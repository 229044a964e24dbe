"""``lagscope nginx-config``: an nginx config that keeps upstream connections alive.

The settings table is :mod:`lagscope.nginx.config`, the pure renderer
:mod:`lagscope.nginx.render`, and the command line :mod:`lagscope.nginx.cli`.
"""

from __future__ import annotations

from lagscope.nginx.config import Endpoint, NginxSettings, parse_endpoint, settings_table
from lagscope.nginx.render import NginxConfig, render

__all__ = ["Endpoint", "NginxConfig", "NginxSettings", "parse_endpoint", "render", "settings_table"]

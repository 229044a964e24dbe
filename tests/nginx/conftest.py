"""The nginx fixtures (tests/support/nginx.py) for the nginx-config tests."""

from __future__ import annotations

from support.nginx import nginx, nginx_prefix, start_nginx

__all__ = ["nginx", "nginx_prefix", "start_nginx"]

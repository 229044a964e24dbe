"""Fixtures for the diagnose tests: real nginx (from tests/support/nginx.py)."""

from __future__ import annotations

from support.nginx import nginx, nginx_prefix, start_nginx

__all__ = ["nginx", "nginx_prefix", "start_nginx"]

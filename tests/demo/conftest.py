"""The nginx fixtures (tests/support/nginx.py) for the demo's nginx child."""

from __future__ import annotations

from support.nginx import nginx, nginx_prefix

__all__ = ["nginx", "nginx_prefix"]

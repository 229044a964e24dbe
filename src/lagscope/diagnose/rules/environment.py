"""Proxy variables in the environment: ``proxy-env``. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from lagscope.diagnose.evidence import (
    Evidence,
)
from lagscope.diagnose.model import Figure, Finding
from lagscope.diagnose.rules.common import (
    make_finding,
)
from lagscope.diagnose.thresholds import Thresholds

__all__ = ["proxy_env"]


def proxy_env(ev: Evidence, t: Thresholds, _: Sequence[Finding]) -> Finding | None:
    env = ev.environment
    if not env.proxy_vars:
        return None
    figures = [Figure(name, value) for name, value in env.proxy_vars]
    if env.proxy_applies:
        return make_finding(
            ev,
            t,
            "proxy-env",
            "Proxy variables send this URL through a proxy",
            None,
            "every request",
            [*figures, Figure("applies_to_this_host", True)],
            [
                "Add the host to NO_PROXY (e.g. NO_PROXY=localhost,127.0.0.1,::1), or "
                "unset HTTP_PROXY/HTTPS_PROXY for local work.",
            ],
            "Clients that honour these variables (requests, httpx, urllib, curl) send this "
            "URL through the proxy; lagscope measured the direct path and sent nothing "
            "through the proxy, so its cost is not measured here.",
            severity="warning",
        )
    return make_finding(
        ev,
        t,
        "proxy-env",
        "Proxy variables are set, and NO_PROXY excludes this host",
        None,
        "nothing measured here",
        [*figures, Figure("applies_to_this_host", False)],
        ["Nothing to do for this host."],
        severity="info",
    )

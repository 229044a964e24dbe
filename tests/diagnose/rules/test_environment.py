"""``proxy-env``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.evidence import (
    Evidence,
)
from lagscope.diagnose.model import Environment
from support.diagnose_evidence import ids


def test_proxy_env_warns_only_when_the_proxy_applies() -> None:
    applies = Environment("Linux", "py", (("http_proxy", "http://p:3128"),), True, "unknown", ())
    excluded = Environment("Linux", "py", (("http_proxy", "http://p:3128"),), False, "unknown", ())
    assert ids(Evidence("http://127.0.0.1/", True, applies)) == {"proxy-env": "warning"}
    assert ids(Evidence("http://127.0.0.1/", True, excluded)) == {"proxy-env": "info"}

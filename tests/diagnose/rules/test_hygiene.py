"""``redirects``, ``uncompressed-text`` and ``large-payload``, from hand-built evidence."""

from __future__ import annotations

from lagscope.diagnose.evidence import (
    Hygiene,
    RedirectHop,
)
from support.diagnose_evidence import ev, ids


def test_hygiene_rules() -> None:
    hy = Hygiene(
        redirects=(RedirectHop("http://x/a", 301, "http://x/a/", 2.0),),
        content_type="application/json",
        content_encoding=None,
        body_bytes=400_000,
        compressed_bytes=40_000,
        receive_ms=150.0,
    )
    found = ids(ev(hygiene=hy))
    assert found == {
        "redirects": "warning",
        "uncompressed-text": "warning",
        "large-payload": "warning",
    }
    small = Hygiene((), "application/json", None, 2_000, 1_900, 0.1)
    assert ids(ev(hygiene=small)) == {}

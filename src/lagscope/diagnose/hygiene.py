"""The HTTP-hygiene rung: one request offering compression, for the body's size, type and
encoding (and what gzip would save), with the redirects the first request followed."""

from __future__ import annotations

import gzip
from dataclasses import replace

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import Hygiene, RedirectHop
from lagscope.diagnose.model import Figure
from lagscope.diagnose.traffic import single

__all__ = ["hygiene"]

# What a browser offers; gzip level 6 is what servers use by default.
_ACCEPT_ENCODING = "gzip, deflate, br"
_GZIP_LEVEL = 6


def hygiene(run: LadderRun, hops: tuple[RedirectHop, ...]) -> Hygiene:
    t0 = run.start("http hygiene")
    probe = replace(run.probe, headers=(*run.probe.headers, ("Accept-Encoding", _ACCEPT_ENCODING)))
    record, ex = single(run, run.client(probe), "hygiene", "http hygiene", keep_body=True)
    run.keep([record])
    headers = dict(ex.headers)
    encoding = headers.get("content-encoding")
    compressed = None
    if not encoding and ex.body:
        compressed = len(gzip.compress(ex.body, compresslevel=_GZIP_LEVEL))
    hy = Hygiene(
        redirects=hops,
        content_type=headers.get("content-type"),
        content_encoding=encoding,
        body_bytes=ex.body_bytes,
        compressed_bytes=compressed,
        receive_ms=ex.receive_ms,
        redirect_stop=run.redirect_stop,
    )
    run.done(
        "http hygiene",
        "HTTP hygiene",
        t0,
        [
            Figure("redirects", len(hops)),
            Figure("content_type", hy.content_type),
            Figure("content_encoding", encoding or "none"),
            Figure("body_bytes", ex.body_bytes, "B"),
            Figure("gzip_bytes", compressed, "B"),
        ],
    )
    return hy

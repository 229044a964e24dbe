"""``serve --https``: which certificate and key are served, and what start-up says about them.

The local CA's localhost certificate (:mod:`lagscope.cert`, made on first use, renewed when
stale) unless ``--tls-cert-file``/``--tls-key-file`` name others. The TLS itself is
granian's (ALPN h2 and http/1.1); waitress has none, which :mod:`lagscope.serve.settings`
refuses up front.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lagscope.cert import served_files
from lagscope.errors import ExitCode, LagscopeError
from lagscope.serve.settings import ServeConfig

__all__ = ["TlsFiles", "https_files"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    local_ca_names: tuple[str, ...]  # what the local CA's certificate covers; () if given


def https_files(config: ServeConfig, echo: Callable[[str], None]) -> TlsFiles:
    """The certificate and key to serve, checked readable; start-up lines through ``echo``."""
    cert, key, made = served_files(config.tls_cert_file, config.tls_key_file)
    if made is None:
        files = TlsFiles(cert, key, local_ca_names=())
        for path in (files.cert, files.key):
            if not path.is_file():
                raise LagscopeError("config", f"--https: {path} is not a file", ExitCode.USAGE)
        echo(f"lagscope serve: TLS certificate {files.cert} (given)")
    else:
        from lagscope.cert.authority import LEAF_NAMES, describe  # cryptography is there now

        files = TlsFiles(cert, key, local_ca_names=LEAF_NAMES)
        state = "made now" if made.leaf_created else "kept"
        echo(f"lagscope serve: TLS certificate {files.cert} ({state}), from {describe(made.ca)}")
        echo(
            "lagscope serve: browsers trust it once the CA is installed for you: "
            "lagscope cert install (lagscope cert status shows where it is trusted)"
        )
    echo(
        "lagscope serve: TLS only on this port (ALPN h2, http/1.1): a plain http:// request "
        "here gets no HTTP answer (a line here says when one arrives); use the https:// URL below"
    )
    return files

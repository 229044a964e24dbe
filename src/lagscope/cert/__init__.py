"""``lagscope cert``: a local development CA for https://localhost, as mkcert does it.

:mod:`~lagscope.cert.authority` makes the certificates (pure), :mod:`~lagscope.cert.files`
keeps them in the per-user data directory, :mod:`~lagscope.cert.trust` plans and runs the
trust-store commands (current user only unless ``--system``), :mod:`~lagscope.cert.cli` is
the command. ``serve --https`` and the demo use the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lagscope.errors import ExitCode, LagscopeError

if TYPE_CHECKING:
    from lagscope.cert.files import Ensured

__all__ = ["ensure_local"]


def ensure_local(data_dir: Path | None = None) -> Ensured:
    """The local CA and its localhost certificate in ``data_dir`` (default: the per-user
    data directory), made when missing or stale: what ``serve --https``, ``nginx-config
    --https`` and ``demo --https`` serve. Without the https extra (cryptography), one line
    naming it (exit 8)."""
    try:
        from lagscope.cert.files import cert_files, ensure
    except ImportError as exc:
        raise LagscopeError(
            "cert",
            f"HTTPS needs the https extra for its certificate (pip install 'lagscope[https]'): "
            f"{exc}",
            ExitCode.ENVIRONMENT,
        ) from None
    return ensure(cert_files(data_dir))

"""``lagscope cert``: a local development CA for https://localhost, as mkcert does it.

:mod:`~lagscope.cert.authority` makes the certificates (pure), :mod:`~lagscope.cert.files`
keeps them in the per-user data directory, :mod:`~lagscope.cert.trust` plans and runs the
trust-store commands (current user only unless ``--system``), :mod:`~lagscope.cert.cli` is
the command. ``serve --https``, ``nginx-config --https`` and the demo use the same files,
chosen here (:func:`served_files`) under one rule for ``--tls-cert-file`` /
``--tls-key-file`` (:func:`check_tls_files`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lagscope.errors import ExitCode, LagscopeError
from lagscope.settings_table import SettingsError

if TYPE_CHECKING:
    from lagscope.cert.files import Ensured

__all__ = ["check_tls_files", "ensure_local", "served_files"]


def check_tls_files(https: bool, cert_file: str | Path | None, key_file: str | Path | None) -> None:
    """The rule of ``--tls-cert-file`` and ``--tls-key-file`` for every command that takes
    them: only with ``--https``, and both or neither. A :class:`SettingsError` (exit 2)."""
    if (cert_file or key_file) and not https:
        raise SettingsError("--tls-cert-file applies to --https")
    if bool(cert_file) != bool(key_file):
        raise SettingsError("--tls-cert-file and --tls-key-file go together")


def served_files(
    cert_file: str | Path | None, key_file: str | Path | None
) -> tuple[Path, Path, Ensured | None]:
    """The certificate chain and key to serve: the given pair (checked by
    :func:`check_tls_files`), or else the local CA's localhost certificate, made when missing
    or stale (then also what :func:`ensure_local` made)."""
    if cert_file and key_file:
        return Path(cert_file), Path(key_file), None
    made = ensure_local()
    return made.files.leaf_cert, made.files.leaf_key, made


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

"""Where the local CA and the localhost certificate live, and how they are written.

Everything sits in ``<per-user data dir>/cert`` (the directory ``serve`` already uses:
``LAGSCOPE_DATA_DIR``, else ``%LOCALAPPDATA%\\lagscope``, ``~/Library/Application
Support/lagscope`` or ``~/.local/share/lagscope``). The directory is made ``0700`` and
the two private keys ``0600`` on POSIX, written to a new file created with that mode (never
widened, then renamed into place), so no other user can read a key even for a moment. On
Windows the modes do not apply; ``%LOCALAPPDATA%`` is readable by its user (and
administrators) only. The keys are never copied anywhere else: installing puts the CA's
*certificate* in trust stores, and serve reads the leaf key from here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from lagscope.cert.authority import Issued, leaf_matches, make_ca, make_leaf
from lagscope.errors import ExitCode, LagscopeError

__all__ = ["CertFiles", "Ensured", "cert_files", "ensure", "load_ca", "owner_name"]

_PRIVATE_FILE_MODE = 0o600
_PRIVATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class CertFiles:
    """The four files, by role."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "rootCA.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "rootCA-key.pem"

    @property
    def leaf_cert(self) -> Path:
        return self.directory / "localhost.pem"

    @property
    def leaf_key(self) -> Path:
        return self.directory / "localhost-key.pem"


def cert_files(data_dir: Path | None = None) -> CertFiles:
    """The files in ``data_dir`` (default: the per-user data directory) ``/cert``."""
    if data_dir is None:
        from lagscope.refapp.config import default_data_dir

        data_dir = default_data_dir()
    return CertFiles(data_dir / "cert")


def owner_name() -> str:
    """``user@host``, written into the CA's name so stores show whose CA it is."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container with an unknown uid)
        user = "user"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Ensured:
    """What :func:`ensure` found or made."""

    files: CertFiles
    ca: x509.Certificate
    leaf: x509.Certificate
    ca_created: bool
    leaf_created: bool


def load_ca(files: CertFiles) -> x509.Certificate | None:
    """The CA certificate, or None when there is none yet."""
    try:
        data = files.ca_cert.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LagscopeError(
            "cert", f"cannot read {files.ca_cert}: {exc}", ExitCode.ENVIRONMENT
        ) from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise LagscopeError(
            "cert",
            f"{files.ca_cert} is not a PEM certificate; move it away and run lagscope cert create",
            ExitCode.ENVIRONMENT,
        ) from None


def _load_issued(cert: Path, key: Path) -> Issued | None:
    try:
        return Issued(cert.read_bytes(), key.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LagscopeError("cert", f"cannot read {cert}: {exc}", ExitCode.ENVIRONMENT) from None


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR_MODE)
        if sys.platform != "win32":
            os.chmod(directory, _PRIVATE_DIR_MODE)
    except OSError as exc:
        raise LagscopeError(
            "cert", f"cannot create {directory}: {exc}", ExitCode.ENVIRONMENT
        ) from None


def _write(path: Path, data: bytes, mode: int) -> None:
    # A new file created with its final mode (the umask can only narrow it), then renamed
    # over the old one: a key is never readable by others, not even while being written.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LagscopeError("cert", f"cannot write {path}: {exc}", ExitCode.ENVIRONMENT) from None


def _write_issued(issued: Issued, cert: Path, key: Path) -> None:
    _write(key, issued.key_pem, _PRIVATE_FILE_MODE)
    _write(cert, issued.cert_pem, 0o644)


def ensure(files: CertFiles, now: dt.datetime | None = None, owner: str | None = None) -> Ensured:
    """The CA and the localhost certificate, made when missing; the leaf is made again when
    it was not issued by this CA, lacks a name or has less than 30 days left."""
    now = dt.datetime.now(dt.timezone.utc) if now is None else now
    _make_private_dir(files.directory)
    ca = _load_issued(files.ca_cert, files.ca_key)
    ca_created = ca is None
    if ca is None:
        ca = make_ca(owner or owner_name(), now)
        _write_issued(ca, files.ca_cert, files.ca_key)
    elif sys.platform != "win32":
        os.chmod(files.ca_key, _PRIVATE_FILE_MODE)  # narrowed again if someone widened it
    try:
        ca_cert = ca.cert
    except ValueError:
        raise LagscopeError(
            "cert",
            f"{files.ca_cert} is not a PEM certificate; move the directory away and run "
            "lagscope cert create",
            ExitCode.ENVIRONMENT,
        ) from None
    leaf = _load_issued(files.leaf_cert, files.leaf_key)
    leaf_created = False
    leaf_cert = None
    if leaf is not None:
        try:
            leaf_cert = leaf.cert
        except ValueError:
            leaf_cert = None
    if leaf_cert is None or ca_created or not leaf_matches(leaf_cert, ca_cert, now):
        leaf = make_leaf(ca, now)
        _write_issued(leaf, files.leaf_cert, files.leaf_key)
        leaf_cert = leaf.cert
        leaf_created = True
    return Ensured(files, ca_cert, leaf_cert, ca_created, leaf_created)

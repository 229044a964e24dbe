"""Writing files the user asked for, atomically: all of the new text or none of it.

A report or config is written to a temporary file in the target's directory and moved over
the target with ``os.replace`` (atomic on Windows and POSIX), so an interrupted run never
leaves a half-written file and never destroys what was there before.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from lagscope.errors import ExitCode, LagscopeError

__all__ = ["write_text_atomic"]


def write_text_atomic(path: Path, text: str, check: Callable[[Path], None] | None = None) -> None:
    """Write ``text`` to ``path`` atomically.

    ``check`` (optional) sees the complete temporary file before it replaces the target; if
    it raises, the target is left untouched. OS failures become a one-line LagscopeError.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        # 0o666 through os.open lets the umask decide, as for any file the user creates;
        # mkstemp's 0600 would make a config unreadable by the service that loads it.
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise LagscopeError(
            "output", f"cannot write {target}: {exc.strerror or exc}", ExitCode.ENVIRONMENT
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():
            # Replacing a file keeps its permissions (a 0600 report stays private).
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LagscopeError(
            "output", f"cannot write {target}: {exc.strerror or exc}", ExitCode.ENVIRONMENT
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

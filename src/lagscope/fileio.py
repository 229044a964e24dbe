"""Writing files the user asked for, atomically: all of the new text or none of it.

A report or config is written to a temporary file in the target's directory and moved over
the target with ``os.replace`` (atomic on Windows and POSIX), so an interrupted run never
leaves a half-written file and never destroys what was there before.
"""

from __future__ import annotations

import os
import tempfile
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
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise LagscopeError(
            "output", f"cannot write {target}: {exc.strerror or exc}", ExitCode.ENVIRONMENT
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; a config must be readable by the service that loads it
        # (nginx workers, say), and a report by the user's other tools.
        os.chmod(tmp, 0o644)
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

"""Files the user names: writing ``-o`` outputs without destroying what is at the path, and
reading config and saved reports whatever text encoding a Windows shell gave them.

Writing (:func:`write_text_atomic`) depends on what the path is:

- a regular file or a new path: the text goes to a temporary file in the same directory,
  which then replaces the target with ``os.replace`` (atomic on Windows and POSIX), so an
  interrupted run never leaves a half-written file; a replaced file keeps its mode;
- a symbolic link: followed, and its final target handled as above, so the link stays;
- a FIFO, a character or block device (``/dev/null``, ``/dev/stdout``, ``NUL``): written
  in place, never renamed over, which would turn a device node into a regular file.

On Windows an antivirus scanner or the search indexer briefly opens new files, and
``os.replace`` then fails with PermissionError: it is retried for up to 2 s. A temporary
file is never left behind, even a read-only one (Windows refuses to delete those).

Before a command measures anything, :func:`check_outputs` makes sure every output can be
written (its directory exists and takes a new file) and that no two outputs, and no output
and an input, are the same file, through links and hard links alike: an hour's measurement
is not lost to a typo, and ``report run.json -o run.json`` never replaces the saved run.
:func:`write_all` then writes each output even when another fails.

Reading (:func:`read_text`): UTF-8 with or without a byte-order mark (Notepad writes one),
and UTF-16 with a byte-order mark (what PowerShell 5.1's ``>`` writes).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "Replacer",
    "check_outputs",
    "decode_text",
    "read_text",
    "write_all",
    "write_text_atomic",
]

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class Replacer:
    """How a finished temporary file is moved over its target, and how long a locked
    target is waited for. The defaults are the real file system and clock."""

    replace: Callable[[StrPath, StrPath], None] = os.replace
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # Antivirus and indexer locks last tens to hundreds of milliseconds.
    retry_for_s: float = 2.0
    pause_s: float = 0.05

    def move(self, source: Path, target: Path) -> None:
        """``replace(source, target)``, retried on PermissionError until ``retry_for_s``."""
        deadline = self.clock() + self.retry_for_s
        while True:
            try:
                self.replace(source, target)
                return
            except PermissionError:
                if self.clock() >= deadline:
                    raise
            self.sleep(self.pause_s)


SYSTEM_REPLACER = Replacer()


def _error(target: Path, exc: OSError, extra: str = "") -> LagscopeError:
    return LagscopeError(
        "output", f"cannot write {target}: {exc.strerror or exc}{extra}", ExitCode.ENVIRONMENT
    )


def _mode(path: Path, follow: bool) -> int | None:
    """st_mode of ``path`` (of its final target when ``follow``), None when there is none."""
    try:
        return (os.stat(path) if follow else os.lstat(path)).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:  # a loop of links, an unreadable directory on the way
        raise _error(path, exc) from None


def _through_fd_link(path: Path) -> bool:
    """Whether a chain of links passes through /proc/<pid>/fd or /dev/fd: ``-o /dev/stdout``
    means the caller's open stdout, even when that is a regular file."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if current.startswith(("/proc/", "/dev/fd/")):
            return True
        try:
            link = os.readlink(current)
        except OSError:
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), link))
    return False


def _identity(path: Path) -> tuple[str, tuple[int, int] | None, bool]:
    """The file ``path`` names: its resolved path, (device, inode) when it exists, and
    whether it is a regular file or a new one (devices and FIFOs may be named twice)."""
    resolved = os.path.normcase(os.path.realpath(path))
    try:
        st = os.stat(path)
    except OSError:
        return resolved, None, True
    return resolved, (st.st_dev, st.st_ino), stat.S_ISREG(st.st_mode)


def _same(
    a: tuple[str, tuple[int, int] | None, bool], b: tuple[str, tuple[int, int] | None, bool]
) -> bool:
    return a[0] == b[0] or (a[1] is not None and a[1] == b[1])


def _check_writable(name: str, path: Path) -> None:
    target = Path(os.path.realpath(path))
    try:
        mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:  # a file where a directory should be, a loop of links
        raise LagscopeError(
            "output", f"cannot write {name} {path}: {exc.strerror or exc}", ExitCode.ENVIRONMENT
        ) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise LagscopeError("output", f"{name} {path} is a directory", ExitCode.ENVIRONMENT)
    if mode is not None and not stat.S_ISREG(mode):
        if not os.access(target, os.W_OK):  # a device or a FIFO: written in place
            raise LagscopeError("output", f"{name} {path}: not writable", ExitCode.ENVIRONMENT)
        return
    # A regular file is replaced through a new file beside it: try making one there.
    directory = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".check", dir=directory)
    except OSError as exc:
        why = "no such directory" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise LagscopeError(
            "output",
            f"cannot write {name} {path}: {why or exc} ({directory})",
            ExitCode.ENVIRONMENT,
        ) from None
    os.close(fd)
    _discard(Path(tmp))


def check_outputs(
    outputs: Sequence[tuple[str, Path | None]], inputs: Sequence[tuple[str, Path | None]] = ()
) -> None:
    """Refuse, before anything is measured, an output that cannot be written (exit 8) or
    that is the same file as another output or an input (exit 2). ``outputs`` and
    ``inputs`` are ``(option name, path or None)``."""
    given = [(name, path, _identity(path)) for name, path in outputs if path is not None]
    sources = [(name, path, _identity(path)) for name, path in inputs if path is not None]
    for i, (name, path, ident) in enumerate(given):
        for other, other_path, other_ident in sources:
            if _same(ident, other_ident):
                raise LagscopeError(
                    "output",
                    f"{name} {path} is the input {other} {other_path}: it would be replaced",
                    ExitCode.USAGE,
                )
        for other, other_path, other_ident in given[:i]:
            if ident[2] and _same(ident, other_ident):
                raise LagscopeError(
                    "output",
                    f"{other} {other_path} and {name} {path} are the same file; give each its own",
                    ExitCode.USAGE,
                )
    for name, path, _ in given:
        _check_writable(name, path)


def write_all(
    files: Sequence[tuple[Path, Callable[[], str]]],
) -> list[tuple[Path, LagscopeError]]:
    """Write each ``(path, text)`` (:func:`write_text_atomic`), carrying on past a failure;
    the paths that failed and why, in order. A text is made only when its file is written."""
    failed: list[tuple[Path, LagscopeError]] = []
    for path, text in files:
        try:
            write_text_atomic(path, text())
        except LagscopeError as exc:
            failed.append((path, exc))
    return failed


def write_text_atomic(
    path: Path,
    text: str,
    check: Callable[[Path], None] | None = None,
    replacer: Replacer = SYSTEM_REPLACER,
) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path``; see the module docstring for
    what happens to links, devices and FIFOs.

    ``check`` (optional) sees the complete text in a file before the target is touched; if
    it raises, the target is left as it was. OS failures become a one-line LagscopeError
    (exit 8).
    """
    target = Path(path)
    data = text.encode("utf-8")
    mode = _mode(target, follow=False)
    if mode is not None and stat.S_ISLNK(mode):
        mode = _mode(target, follow=True)
        if mode is None or (stat.S_ISREG(mode) and not _through_fd_link(target)):
            # Replace the link's final target (created if the link dangles), keep the link.
            target = Path(os.path.realpath(target))
        elif stat.S_ISREG(mode):
            mode = stat.S_IFIFO  # an open descriptor's file: append to it, as a shell would
    if mode is None or stat.S_ISREG(mode):
        _replace_regular(target, data, check, replacer, mode)
    elif stat.S_ISDIR(mode):
        raise LagscopeError("output", f"{target} is a directory", ExitCode.ENVIRONMENT)
    else:
        _write_in_place(target, data, check)


def _replace_regular(
    target: Path,
    data: bytes,
    check: Callable[[Path], None] | None,
    replacer: Replacer,
    mode: int | None,
) -> None:
    directory = target.parent if str(target.parent) else Path(".")
    # os.urandom, not secrets: the name only has to be unlikely to exist (O_EXCL checks),
    # and secrets' import (hmac, hashlib) is ~10 ms of every command's start-up.
    tmp = directory / f".{target.name}.{os.urandom(6).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        # 0o666 through os.open lets the umask decide, as for any file the user creates;
        # mkstemp's 0600 would make a config unreadable by the service that loads it.
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise _error(target, exc) from None
    replacing = False
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            # Replacing a file keeps its permissions (a 0600 report stays private).
            os.chmod(tmp, stat.S_IMODE(mode))
        if check is not None:
            check(tmp)
        replacing = True
        replacer.move(tmp, target)
    except OSError as exc:
        _discard(tmp)
        locked = isinstance(exc, PermissionError) and replacing
        extra = (
            f" (still locked after {replacer.retry_for_s:g} s: another program, an"
            " antivirus scanner or an editor, holds it open)"
            if locked
            else ""
        )
        raise _error(target, exc, extra) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    """Remove a temporary file, clearing read-only first: Windows will not delete a
    read-only file, and a replaced read-only target passes its mode on to the temporary."""
    # Failures here are ignored: the caller's own error is the one to report.
    with contextlib.suppress(OSError):
        os.chmod(tmp, stat.S_IWRITE | stat.S_IREAD)
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _write_in_place(target: Path, data: bytes, check: Callable[[Path], None] | None) -> None:
    if check is not None:
        # The check needs a file to read; a device or FIFO can only be written once.
        import tempfile

        with tempfile.TemporaryDirectory(prefix="lagscope-check-") as tmp_dir:
            staged = Path(tmp_dir) / target.name
            staged.write_bytes(data)
            check(staged)
    try:
        # No O_CREAT (it exists and is not a regular file) and no rename; O_APPEND so a
        # regular file behind /dev/stdout keeps what was written before. A FIFO blocks here
        # until a reader opens it, as with a shell's `>`.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _error(target, exc) from None
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            view = memoryview(data)
            while view:
                written = fh.write(view)
                view = view[written or 0 :]
    except OSError as exc:
        raise _error(target, exc) from None


def decode_text(data: bytes) -> str:
    """Text from a file's bytes: UTF-8 (a leading byte-order mark dropped) or UTF-16 with a
    byte-order mark. Raises ValueError with a one-line reason otherwise."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not data.startswith(
        codecs.BOM_UTF32_LE
    ):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ValueError(f"invalid UTF-16 at byte {exc.start}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise ValueError("contains NUL bytes (UTF-16 without a byte-order mark?); save it as UTF-8")
    return text


def read_text(path: Path) -> str:
    """A config or saved report as text (see :func:`decode_text`). Raises OSError when the
    file cannot be read and ValueError when its bytes are not text."""
    return decode_text(Path(path).read_bytes())

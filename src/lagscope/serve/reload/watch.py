"""What ``serve --reload`` watches, and the watcher thread.

:func:`wanted` is the rule (pure): under a code root, Python files and anything inside a
``templates`` directory; under a template root (a ``TEMPLATES`` ``DIRS`` entry), any file;
never inside ``__pycache__``, version-control, cache or virtual-environment directories
(:data:`IGNORED_DIRS`, or a directory holding ``pyvenv.cfg``), and never an editor's
temporary file.

:class:`Watcher` runs watchfiles (the ``reload`` extra: inotify, FSEvents or
ReadDirectoryChangesW, grouping a burst of saves until 50 ms pass without another) in a
thread and calls back with the changed paths. Where the native watcher cannot start, or
``LAGSCOPE_RELOAD_POLL=1`` asks for it, watchfiles polls; without watchfiles installed a
small standard-library poller compares modification times every 0.5 s.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePath

__all__ = ["IGNORED_DIRS", "POLL_ENV", "Roots", "Watcher", "wanted"]

IGNORED_DIRS = frozenset(
    {
        "__pycache__",
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "site-packages",
        "dist-packages",
    }
)
POLL_ENV = "LAGSCOPE_RELOAD_POLL"
# watchfiles: yield once no new change came for STEP_MS, at the latest after DEBOUNCE_MS.
STEP_MS = 50
DEBOUNCE_MS = 1600
POLL_S = 0.5

OnChange = Callable[[list[str]], None]


@dataclass(frozen=True)
class Roots:
    """``code``: project directories (Python files and app templates); ``templates``:
    template directories (every file)."""

    code: tuple[str, ...]
    templates: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.code + self.templates


def _is_temporary(name: str) -> bool:
    return (
        name.startswith((".#", "~"))
        or name.endswith(("~", ".swp", ".swx", ".tmp"))
        or name in ("4913", ".DS_Store")  # vim's write test; Finder
    )


def wanted(path: str, roots: Roots, is_venv: Callable[[str], bool] = lambda _d: False) -> bool:
    """Does a change to ``path`` call for a reload? ``is_venv(directory)`` says whether a
    directory is a virtual environment (pure by default; :class:`Watcher` checks the disk)."""
    target = PurePath(path)
    for is_template_root, group in ((True, roots.templates), (False, roots.code)):
        for root in group:
            try:
                relative = target.relative_to(root)
            except ValueError:
                continue
            dirs, name = relative.parts[:-1], relative.name
            if not name or _is_temporary(name):
                return False
            if any(d in IGNORED_DIRS or d.endswith(".egg-info") for d in dirs):
                return False
            current = PurePath(root)
            for d in dirs:
                current = current / d
                if is_venv(str(current)):
                    return False
            return is_template_root or name.endswith(".py") or "templates" in dirs
    return False


@functools.lru_cache(maxsize=4096)
def _venv_on_disk(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def _walk(roots: Roots) -> Iterator[str]:
    for root in roots.all:
        for here, dirs, files in os.walk(root):
            dirs[:] = [
                d
                for d in dirs
                if d not in IGNORED_DIRS and not _venv_on_disk(os.path.join(here, d))
            ]
            for name in files:
                yield os.path.join(here, name)


class Watcher:
    """A thread that calls ``on_change(paths)`` for each burst of wanted changes."""

    def __init__(self, roots: Roots, on_change: OnChange, poll: bool | None = None) -> None:
        self.roots = roots
        self.on_change = on_change
        self.poll = os.environ.get(POLL_ENV, "") == "1" if poll is None else poll
        self.how = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> str:
        """Start watching; returns how (for the start-up line), once it watches."""
        self._thread = threading.Thread(target=self._run, name="lagscope-reload-watch", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self.how

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _filter(self, _change: object, path: str) -> bool:
        return wanted(path, self.roots, _venv_on_disk)

    def _run(self) -> None:
        try:
            import watchfiles
        except ImportError:
            self.how = "polling every 0.5 s (pip install 'lagscope[reload]' for native events)"
            self._poll_stdlib()
            return
        force = self.poll
        for _attempt in range(2):
            self.how = "watchfiles, polling" if force else "watchfiles"
            try:
                changes_iter = watchfiles.watch(
                    *self.roots.all,
                    watch_filter=self._filter,
                    stop_event=self._stop,
                    step=STEP_MS,
                    debounce=DEBOUNCE_MS,
                    force_polling=force,
                    poll_delay_ms=int(POLL_S * 1000),
                    yield_on_timeout=True,
                    rust_timeout=200,
                    raise_interrupt=False,
                    ignore_permission_denied=True,
                )
                # A polling watcher takes its first snapshot during its first poll: an
                # edit before that would be part of it, not a change.
                settled_s = time.monotonic() + (2 * POLL_S if force else 0.0)
                for changes in changes_iter:
                    if time.monotonic() >= settled_s:
                        self._ready.set()
                    if changes:
                        self.on_change(sorted({path for _c, path in changes}))
                return
            except (OSError, RuntimeError):
                if force or self._stop.is_set():
                    break
                force = True  # the native watcher could not start: poll instead
        self._ready.set()

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        seen: dict[str, tuple[int, int]] = {}
        for path in _walk(self.roots):
            if wanted(path, self.roots, _venv_on_disk):
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    seen[path] = (st.st_mtime_ns, st.st_size)
        return seen

    def _poll_stdlib(self) -> None:
        before = self._snapshot()
        self._ready.set()
        while not self._stop.wait(POLL_S):
            after = self._snapshot()
            changed = changed_paths(before, after)
            before = after
            if changed:
                self.on_change(changed)


def changed_paths(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> list[str]:
    """Paths added, removed or modified between two snapshots (pure)."""
    keys: Iterable[str] = before.keys() | after.keys()
    return sorted(k for k in keys if before.get(k) != after.get(k))

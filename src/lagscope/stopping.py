"""How long-running commands (``serve``, ``inject``, ``demo``) are asked to stop, on every
platform.

Owns five things:

- which signals mean "stop gracefully" per platform (:func:`graceful_signals`): SIGINT,
  SIGTERM and SIGHUP (the terminal closed) on POSIX; SIGINT (Ctrl+C) and SIGBREAK
  (Ctrl+Break, and what the C runtime turns other console events into) on Windows, where
  SIGTERM is never delivered by another process (``TerminateProcess`` kills at once);
- the rule for repeated signals (:class:`SignalRule`): the first one starts a graceful
  stop, a copy of the *same* signal within ``duplicate_window_s`` is ignored (a group
  SIGTERM under ``uv run`` arrives twice: once directly, once forwarded by uv), any other
  one stops at once;
- console close on Windows (``CTRL_CLOSE_EVENT``, logoff, shutdown): Windows ends the
  process as soon as the console handler returns, so the handler installed through
  ``SetConsoleCtrlHandler`` (ctypes) starts the graceful stop and *waits* for it, up to
  :data:`CONSOLE_CLOSE_BUDGET_S` (Windows kills a process that takes more than 5 s);
- commands whose cleanup is the unwinding of what they started (``demo``: a throwaway
  PostgreSQL cluster, app servers, temp dirs) get every stop signal as Ctrl+C
  (:func:`interrupt_on_stop`): SIGTERM, SIGHUP, SIGBREAK and a console close all raise
  KeyboardInterrupt in the main thread, so they clean up exactly as Ctrl+C does;
- the ``with`` form of what Python callers start and stop (:class:`StartStop`: the
  ``Injector``, ``ServeProcess``): entering starts, leaving stops, however the block ended.

Pure apart from :func:`handle_stop_signals` and :func:`interrupt_on_stop`, which install the
handlers (main thread only).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Literal, TypeVar

__all__ = [
    "CONSOLE_CLOSE_BUDGET_S",
    "ClosedOnExit",
    "SignalRule",
    "StartStop",
    "StopRequest",
    "graceful_signal_names",
    "graceful_signals",
    "handle_stop_signals",
    "interrupt_on_stop",
    "interrupt_signal_names",
    "on_console_event",
]

# Windows gives a console-close handler 5 s (SPI_GETHUNGAPPTIMEOUT) before it kills the
# process; leave some of it for the interpreter to exit.
CONSOLE_CLOSE_BUDGET_S = 4.5

# wincon.h: the events after which Windows terminates the process once handlers return.
CTRL_CLOSE_EVENT = 2
CTRL_LOGOFF_EVENT = 5
CTRL_SHUTDOWN_EVENT = 6
_ENDING_EVENTS = (CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT)


def graceful_signal_names(platform: str = sys.platform) -> tuple[str, ...]:
    """The signals that stop a command gracefully on ``platform`` (``sys.platform``)."""
    if platform.startswith("win"):
        return ("SIGINT", "SIGBREAK")
    # SIGHUP too: a closed terminal must drain and clean up as Ctrl+C does, where its
    # default action would end the process with requests in flight and children running.
    return ("SIGINT", "SIGTERM", "SIGHUP")


def graceful_signals(platform: str = sys.platform) -> tuple[int, ...]:
    """The signal numbers of :func:`graceful_signal_names` that exist on this interpreter."""
    return _numbers(graceful_signal_names(platform))


def interrupt_signal_names(platform: str = sys.platform) -> tuple[str, ...]:
    """The signals that end a command as Ctrl+C does (:func:`interrupt_on_stop`): the
    graceful ones (SIGHUP among them on POSIX)."""
    return graceful_signal_names(platform)


def _numbers(names: Iterable[str]) -> tuple[int, ...]:
    return tuple(int(getattr(signal, n)) for n in names if hasattr(signal, n))


Decision = Literal["graceful", "duplicate", "immediate"]


@dataclass
class SignalRule:
    """First signal: graceful. The same signal again within the window: a duplicate.
    Anything after that: immediate."""

    duplicate_window_s: float = 1.0
    _first: tuple[int, float] | None = None

    def classify(self, signum: int, now_s: float) -> Decision:
        if self._first is None:
            self._first = (signum, now_s)
            return "graceful"
        first_signum, first_s = self._first
        if signum == first_signum and now_s - first_s < self.duplicate_window_s:
            return "duplicate"
        return "immediate"


def on_console_event(
    event: int,
    stop: Callable[[], None],
    wait_stopped: Callable[[float], object],
    budget_s: float = CONSOLE_CLOSE_BUDGET_S,
) -> bool:
    """The console control handler's logic (pure: ``stop`` and ``wait_stopped`` passed in).

    For close, logoff and shutdown: start the graceful stop and wait for it (the process
    dies when this returns). Other events (Ctrl+C, Ctrl+Break) return False, so the C
    runtime's handler turns them into SIGINT / SIGBREAK as usual.
    """
    if event not in _ENDING_EVENTS:
        return False
    stop()
    wait_stopped(budget_s)
    return True


if sys.platform == "win32":

    @contextlib.contextmanager
    def _console_handler(handler: Callable[[int], bool]) -> Iterator[None]:
        import ctypes
        from ctypes import wintypes

        routine_type = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.DWORD)
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        # Keep a reference: Windows calls it from its own thread while it is installed.
        routine = routine_type(lambda event: bool(handler(int(event))))
        installed = bool(kernel32.SetConsoleCtrlHandler(routine, True))
        try:
            yield
        finally:
            if installed:
                kernel32.SetConsoleCtrlHandler(routine, False)

else:

    @contextlib.contextmanager
    def _console_handler(handler: Callable[[int], bool]) -> Iterator[None]:
        yield  # no console control events outside Windows


@contextlib.contextmanager
def handle_stop_signals(
    graceful: Callable[[int], None],
    signals: Iterable[int],
    *,
    wait_stopped: Callable[[float], object] = lambda _s: None,
    rule: SignalRule | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_duplicate: Callable[[int], None] = lambda _n: None,
) -> Iterator[None]:
    """Route ``signals`` through the rule while the block runs.

    ``graceful(signum)`` starts the stop (it must return at once); an immediate stop
    raises :class:`KeyboardInterrupt` in the main thread. On Windows a console close also
    calls ``graceful`` (with SIGBREAK's number), then ``wait_stopped(budget_s)``. Outside the
    main thread nothing is installed (signals are delivered to the main thread only).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    rule = rule or SignalRule()

    def handler(signum: int, frame: FrameType | None) -> None:
        decision = rule.classify(signum, clock())
        if decision == "graceful":
            graceful(signum)
        elif decision == "duplicate":
            on_duplicate(signum)
        else:
            raise KeyboardInterrupt

    close_signum = int(getattr(signal, "SIGBREAK", signal.SIGTERM))

    def start_from_console() -> None:
        # A close after Ctrl+C only waits: the graceful stop is already running.
        if rule.classify(close_signum, clock()) == "graceful":
            graceful(close_signum)

    def console(event: int) -> bool:
        return on_console_event(event, start_from_console, wait_stopped)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        with _console_handler(console):
            yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class StopRequest:
    """Whether (and by which signal) a stop was asked for while the block ran."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def interrupt_on_stop(
    *, rule: SignalRule | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[StopRequest]:
    """While the block runs, every stop signal (:func:`interrupt_signal_names`) and, on
    Windows, a console close interrupt the main thread as Ctrl+C does: KeyboardInterrupt,
    so what the block started is unwound the same way whatever stopped it. The copy of a
    group signal that ``uv run`` forwards is ignored (:class:`SignalRule`), so it does not cut
    the cleanup short. The yielded :class:`StopRequest` tells the block that an error which
    surfaces afterwards (a connection the stop reset) is the stop's doing. A console close
    waits for the block to end, within Windows' budget."""
    import _thread
    import threading

    request = StopRequest()
    done = threading.Event()

    def interrupt(signum: int) -> None:
        request.signum = signum
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt
        _thread.interrupt_main()  # a console close: Windows calls from a thread of its own

    try:
        with handle_stop_signals(
            interrupt,
            _numbers(interrupt_signal_names()),
            wait_stopped=done.wait,
            rule=rule,
            clock=clock,
        ):
            yield request
    finally:
        done.set()


_C = TypeVar("_C", bound="ClosedOnExit")
_S = TypeVar("_S", bound="StartStop")


class ClosedOnExit:
    """``with thing:`` gives ``thing`` and calls its :meth:`close` when the block ends, by an
    exception or not (a throwaway cluster, a browser session, a started server)."""

    def close(self) -> object:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StartStop(ClosedOnExit):
    """``with thing:`` starts ``thing`` and stops it when the block ends, by an exception
    or not. Subclasses define :meth:`start` (returning themselves) and :meth:`stop`."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def close(self) -> object:
        return self.stop()

    def __enter__(self: _S) -> _S:
        return self.start()

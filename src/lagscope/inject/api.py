"""The Python API of ``lagscope inject``: :class:`Injector`.

This module owns the lifecycle around :class:`~lagscope.inject.proxy.Proxy` for callers:
from synchronous code (tests, benchmarks, scripts) the proxy runs on its own event loop in
a background thread; from asyncio code (``async with``) it runs on the caller's loop. It
also keeps the ground-truth records in memory (and optionally appends them to a JSON-lines
file) and exposes the live counters.

Example::

    with Injector([Route(listen=("127.0.0.1", 0), upstream=("127.0.0.1", port),
                         faults=[ConnectionTax(delay_ms=300)])]) as inj:
        host, port = inj.address(0)
        ...
        records = inj.records()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from lagscope.inject.config import ProxySettings
from lagscope.inject.log import ConnectionRecord, Counters, JsonlWriter
from lagscope.inject.plan import Route
from lagscope.inject.proxy import Clock, Dial, Proxy, Sleep
from lagscope.netutil import run_in_new_loop
from lagscope.stopping import StartStop

__all__ = ["Injector"]


class Injector(StartStop):
    """A running fault proxy for one or more routes.

    Use as ``with Injector(routes) as inj:`` (own loop in a daemon thread; ``start()`` /
    ``stop()`` do the same by hand) or ``async with Injector(routes) as inj:`` (the
    caller's loop). ``ready`` is set once every route is listening; ``address(i)`` is the
    bound (host, port) of route ``i``.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        settings: ProxySettings | None = None,
        log_path: str | Path | None = None,
        clock: Clock = time.perf_counter,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        dial: Dial | None = None,
    ) -> None:
        self.routes = list(routes)
        self.settings = settings or ProxySettings()
        self.log_path = None if log_path is None else Path(log_path)
        self.ready = threading.Event()
        # Set once start-up has either succeeded or failed, so start() never polls.
        self._settled = threading.Event()
        self._records: list[ConnectionRecord] = []
        self._cond = threading.Condition()
        self._writer: JsonlWriter | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._dial = dial
        self._proxy = self._new_proxy()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        # Set when appending to log_path failed; logging stopped at that point.
        self.log_error: str | None = None

    def _new_proxy(self) -> Proxy:
        return Proxy(
            self.routes,
            settings=self.settings,
            on_record=self._on_record,
            clock=self._clock,
            wall_clock=self._wall_clock,
            sleep=self._sleep,
            dial=self._dial,
        )

    def _fresh_proxy(self) -> None:
        # An Injector can be started again after stop(); a Proxy cannot.
        if self._proxy.closed:
            self._proxy = self._new_proxy()

    def __repr__(self) -> str:
        state = "ready" if self.ready.is_set() else "not started"
        c = self.counters() if self.ready.is_set() else Counters()
        return f"<Injector {state} routes={len(self.routes)} active={c.active} closed={c.closed}>"

    # -- records and counters ----------------------------------------------------------------

    def _on_record(self, record: ConnectionRecord) -> None:
        if self._writer is not None:
            try:
                self._writer.write(record)
            except OSError as exc:
                # A full disk must not cost connections: stop logging, keep proxying, and
                # let the caller see it (the CLI turns it into its exit status).
                self.log_error = f"cannot write {self.log_path}: {exc.strerror or exc}"
                self._close_log()
        with self._cond:
            self._records.append(record)
            self._cond.notify_all()

    def records(self) -> list[ConnectionRecord]:
        """Every finished connection's record so far, in order of closing."""
        with self._cond:
            return list(self._records)

    def wait_records(self, count: int, timeout_s: float = 10.0) -> list[ConnectionRecord]:
        """Block until at least ``count`` connections have finished; return all records.

        Raises TimeoutError if they do not finish within ``timeout_s``.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._records) >= count, timeout_s):
                raise TimeoutError(
                    f"{len(self._records)} of {count} connections finished within {timeout_s} s"
                )
            return list(self._records)

    def counters(self, route: int | None = None) -> Counters:
        """Live counters of route ``route`` (position) or of all routes together."""
        return self._proxy.counters(route)

    def address(self, route: int = 0) -> tuple[str, int]:
        """The bound (host, port) of route ``route`` (by position)."""
        if not self.ready.is_set():
            raise RuntimeError("Injector is not running")
        return self._proxy.addresses[route]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [self.address(i) for i in range(len(self.routes))]

    @property
    def route_names(self) -> list[str]:
        return self._proxy.route_names

    # -- synchronous lifecycle (own loop in a thread) ----------------------------------------

    def start(self, timeout_s: float = 10.0) -> Injector:
        """Start the proxy on a background thread and wait until it listens."""
        if self._thread is not None:
            raise RuntimeError("Injector already started")
        self._fresh_proxy()
        self._error = None
        self._open_log()
        self._thread = threading.Thread(target=self._run, name="lagscope-inject", daemon=True)
        self._thread.start()
        self._settled.wait(timeout_s)
        if self._error is not None or not self.ready.is_set():
            err = self._error
            self.stop()
            if err is not None:
                raise err
            raise TimeoutError("the proxy did not start listening in time")
        return self

    def _run(self) -> None:
        try:
            # Our own loop, not the policy's: on Windows a Proactor loop even where the
            # application installed the Selector policy (512-socket select() cap).
            run_in_new_loop(self._main())
        except BaseException as exc:  # reported to start(); the thread must not die loudly
            self._error = exc
        finally:
            self._settled.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._proxy.start()
        except BaseException as exc:
            self._error = exc
            return
        self.ready.set()
        self._settled.set()
        try:
            await self._stop.wait()
        finally:
            await self._proxy.aclose()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop listening, end open connections and join the thread. Idempotent."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already finished
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout_s)
        self._thread = None
        self.ready.clear()
        self._settled.clear()
        self._close_log()

    # -- asyncio lifecycle (caller's loop) ---------------------------------------------------

    async def __aenter__(self) -> Injector:
        self._fresh_proxy()
        self._open_log()
        try:
            await self._proxy.start()
        except BaseException:
            self._close_log()
            raise
        self.ready.set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._proxy.aclose()
        finally:
            self.ready.clear()
            self._close_log()

    def _open_log(self) -> None:
        if self.log_path is not None and self._writer is None:
            self._writer = JsonlWriter(self.log_path)

    def _close_log(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.close()

"""An independent per-connection tax for browser tests: a small asyncio forwarder on loopback.

It is not ``lagscope inject`` on purpose: the figures lagscope reports are checked against a
delay lagscope did not make. Every accepted connection's first bytes from the client are
held ``delay_s`` before they go upstream (what stream inspection does to a new connection);
later bytes pass at once. It counts connections and records how long it actually held each
(a starved machine holds longer than asked), so a test compares the browser's figures with
what was really applied.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class TaxProxy:
    def __init__(self, upstream: tuple[str, int], delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.connections = 0
        self.held_ms: list[float] = []  # per connection, the hold actually applied
        # Per connection in accept order: the client's first byte to the server's first
        # byte back (the hold plus the server's answer), what a client's first request saw.
        self.first_ms: list[float] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="tax-proxy", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self._loop.run_forever()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        hold_s: float,
        on_first: Callable[[], None],
    ) -> None:
        try:
            first = True
            while data := await reader.read(65536):
                if first:
                    on_first()
                    if hold_s:
                        t0 = time.perf_counter()
                        await asyncio.sleep(hold_s)
                        self.held_ms.append((time.perf_counter() - t0) * 1000)
                first = False
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with suppress(OSError, RuntimeError):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self.first_ms.append(0.0)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            self._tasks.discard(task)
            return
        asked: list[float] = []

        def answered() -> None:
            if asked:
                self.first_ms[index] = (time.perf_counter() - asked[0]) * 1000

        try:
            await asyncio.gather(
                self._pipe(client_r, up_w, self.delay_s, lambda: asked.append(time.perf_counter())),
                self._pipe(up_r, client_w, 0.0, answered),
            )
        finally:
            self._tasks.discard(task)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the tax proxy did not start")

    def stop(self) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def tax_proxy(upstream: tuple[str, int], delay_s: float) -> Iterator[TaxProxy]:
    """A running proxy in front of ``upstream``; its ``port`` is where clients connect."""
    proxy = TaxProxy(upstream, delay_s)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


# --- the same site and proxy in a process of their own ---------------------------------------
# A browser test's own process is busy with Playwright's event traffic; a server sharing its
# GIL would answer late under a loaded CPU and blur the comparison with the delay.


class TaxedSite:
    """``python -m support.taxproxy DELAY_S``: the ten-asset site on waitress behind the
    proxy, in a child process. ``stats()`` asks it for the connection count and holds."""

    def __init__(self, delay_s: float) -> None:
        import subprocess
        import sys

        self._proc = subprocess.Popen(
            [sys.executable, "-m", "support.taxproxy", str(delay_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # readiness: "PORT n" once both are listening
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the taxed site did not start: {line!r}")
        self.port = int(line.split()[1])  # behind the tax
        self.direct_port = int(line.split()[2])  # the same server without it

    def stats(self) -> tuple[int, list[float], list[float]]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("stats\n")
        self._proc.stdin.flush()
        data = json.loads(self._proc.stdout.readline())
        return (
            int(data["connections"]),
            [float(v) for v in data["held_ms"]],
            [float(v) for v in data["first_ms"]],
        )

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()  # the child stops at EOF
        try:
            self._proc.wait(15)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(5)
            if self._proc.stdout is not None:
                self._proc.stdout.close()


@contextmanager
def taxed_site(delay_s: float) -> Iterator[TaxedSite]:
    site = TaxedSite(delay_s)
    try:
        yield site
    finally:
        site.close()


def _main(delay_s: float) -> None:
    import sys

    from support.staticsite import site_app
    from support.wsgi import waitress_server

    with waitress_server(site_app) as addr, tax_proxy(addr, delay_s) as proxy:
        print(f"PORT {proxy.port} {addr[1]}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {
                    "connections": proxy.connections,
                    "held_ms": proxy.held_ms,
                    "first_ms": proxy.first_ms,
                }
                print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    import sys

    _main(float(sys.argv[1]))

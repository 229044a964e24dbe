"""The proxy shell of ``lagscope inject``: listen, accept, dial, and end each connection.

:class:`Proxy` listens on every route, dials the upstream for each accepted connection
(in that connection's own task, so a slow or dead upstream never stalls the acceptor),
runs one :class:`~lagscope.inject.pump.Pump` per direction, and turns how the connection
ended into one :class:`~lagscope.inject.log.ConnectionRecord` for the ``on_record``
callback. The clock, the sleep and the dialler are parameters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence

from lagscope.addresses import resolves_to_loopback
from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject.config import ProxySettings
from lagscope.inject.log import ConnectionRecord, Counters, EndReason
from lagscope.inject.plan import ConnectionPlan, Route, plan_connection
from lagscope.inject.pump import (
    Clock,
    ConnState,
    Counts,
    InjectedReset,
    Leg,
    PeerGone,
    Pump,
    Side,
    Sleep,
    coarse_timer_note,
    hard_reset,
    wait_until,
)
from lagscope.netutil import bind_listeners

__all__ = ["Clock", "CoarseTimerWarning", "Dial", "Proxy", "Sleep", "hard_reset"]

Dial = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

# Happy eyeballs (RFC 8305) for upstream host names: `localhost` resolves to ::1 first on
# Windows, where a refused connect takes ~2 s; the next address is tried after this delay
# instead. 0.1 s is the RFC's lower bound for its connection attempt delay.
HAPPY_EYEBALLS_DELAY_S = 0.1

_END_OF_PEER: dict[Side, EndReason] = {"client": "client_reset", "upstream": "upstream_reset"}


class CoarseTimerWarning(RuntimeWarning):
    """Faults below the timer tick of this platform are rounded up to whole ticks."""


_timer_noted = False


def note_coarse_timer(
    routes: Sequence[Route],
    platform: str = sys.platform,
    version: tuple[int, int] = (sys.version_info[0], sys.version_info[1]),
) -> str | None:
    """:func:`~lagscope.inject.pump.coarse_timer_note` for ``routes``, once per process:
    later calls return None, so the CLI and the proxy do not both say it."""
    global _timer_noted
    if _timer_noted:
        return None
    note = coarse_timer_note((f for r in routes for f in r.faults), platform, version)
    _timer_noted = note is not None
    return note


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _RouteState:
    def __init__(self, route: Route, name: str) -> None:
        self.route = route
        self.name = name
        self.next_index = 0
        self.counts = Counts()
        self.servers: list[asyncio.Server] = []
        self.address: tuple[str, int] | None = None


class _Conn(ConnState):
    def __init__(self, rs: _RouteState, plan: ConnectionPlan, t0: float, wall: float) -> None:
        super().__init__(plan, rs.counts, t0)
        self.rs = rs
        self.wall = wall
        self.client = ""
        self.cwriter: asyncio.StreamWriter | None = None
        self.uwriter: asyncio.StreamWriter | None = None
        self.upstream_connected: float | None = None
        self.dial_applied: float | None = None

    def record(self, index: int, end: EndReason, error: str | None, now: float) -> ConnectionRecord:
        """The ground-truth record of this connection, closed at ``now``."""
        t0 = self.t0

        def ms(t: float | None) -> float | None:
            return None if t is None else (t - t0) * 1000.0

        host, port = self.rs.route.upstream
        return ConnectionRecord(
            id=f"{self.rs.name}#{index}",
            route=self.rs.name,
            index=index,
            client=self.client,
            upstream=f"{host}:{port}",
            faults=self.plan.applied,
            accepted_at=self.wall,
            upstream_connected_ms=ms(self.upstream_connected),
            closed_ms=(now - t0) * 1000.0,
            tax_applied_ms=None if self.tax_applied is None else self.tax_applied * 1000.0,
            dial_delay_applied_ms=None if self.dial_applied is None else self.dial_applied * 1000.0,
            c2u=self.flows["c2u"].record(t0),
            u2c=self.flows["u2c"].record(t0),
            end=end,
            error=error,
        )


class Proxy:
    """Fault-injecting TCP proxy for several routes on the running event loop.

    ``await start()`` binds every route (``addresses`` then holds the bound host and port,
    port 0 resolved); ``await aclose()`` stops listening, ends open connections (their
    records say ``shutdown``) and waits for every handler.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        settings: ProxySettings | None = None,
        on_record: Callable[[ConnectionRecord], None] | None = None,
        clock: Clock = time.perf_counter,
        wall_clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        dial: Dial | None = None,
    ) -> None:
        if not routes:
            raise LagscopeError("config", "no route to proxy", ExitCode.USAGE)
        self.settings = settings or ProxySettings()
        self._routes = [_RouteState(r, r.name or f"r{i}") for i, r in enumerate(routes)]
        names = [rs.name for rs in self._routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            # Record ids are ROUTE#INDEX, so names must tell routes apart.
            raise LagscopeError(
                "config", f"route names must be unique: {', '.join(dupes)}", ExitCode.USAGE
            )
        self._on_record = on_record
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._dial = dial or self._open
        self._pump = Pump(
            chunk_bytes=self.settings.chunk_bytes,
            flow_buffer_bytes=self.settings.flow_buffer_bytes,
            flush_timeout_s=self.settings.shutdown_timeout_s,
            clock=clock,
            sleep=sleep,
        )
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._closing = False

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if _is_ip_literal(host):
            return await asyncio.open_connection(
                host, port, limit=self.settings.reader_buffer_bytes
            )
        return await asyncio.open_connection(
            host,
            port,
            limit=self.settings.reader_buffer_bytes,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closing:
            raise RuntimeError("a closed Proxy cannot be started again; make a new one")
        note = note_coarse_timer([rs.route for rs in self._routes])
        if note is not None:
            warnings.warn(note, CoarseTimerWarning, stacklevel=2)
        for rs in self._routes:
            host, port = rs.route.listen
            if not rs.route.allow_non_loopback and not resolves_to_loopback(host):
                await self.aclose()
                raise LagscopeError(
                    "listen",
                    f"{host} is not a loopback address; listening on it exposes the proxy to "
                    "the network (pass --allow-non-loopback to do it anyway)",
                    ExitCode.USAGE,
                )
            try:
                # Our own sockets, so the Windows exclusive-address option is set before bind.
                for sock in bind_listeners(host, port):
                    rs.servers.append(
                        await asyncio.start_server(
                            self._make_handler(rs),
                            sock=sock,
                            limit=self.settings.reader_buffer_bytes,
                            backlog=self.settings.backlog,
                        )
                    )
            except OSError as exc:
                await self.aclose()
                raise LagscopeError(
                    "listen",
                    f"cannot listen on {host}:{port} ({rs.name}): {exc.strerror or exc}",
                    ExitCode.ENVIRONMENT,
                ) from None
            sockname = rs.servers[0].sockets[0].getsockname()
            rs.address = (str(sockname[0]), int(sockname[1]))

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        for rs in self._routes:
            for server in rs.servers:
                server.close()
        # Let handlers that were accepted but not yet started run far enough to see
        # _closing and close their socket themselves.
        for _ in range(3):
            await asyncio.sleep(0)
        for conn in self._conns.values():
            for w in (conn.cwriter, conn.uwriter):
                if w is not None:
                    w.transport.abort()
        tasks = list(self._conns)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.shutdown_timeout_s)
        for rs in self._routes:
            for server in rs.servers:
                await server.wait_closed()

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` began; a closed proxy cannot be started again."""
        return self._closing

    @property
    def addresses(self) -> list[tuple[str, int]]:
        out = []
        for rs in self._routes:
            if rs.address is None:
                raise RuntimeError("proxy not started")
            out.append(rs.address)
        return out

    @property
    def route_names(self) -> list[str]:
        return [rs.name for rs in self._routes]

    def counters(self, route: int | None = None) -> Counters:
        """Live counters of one route (by position) or, with ``None``, of all routes."""
        if route is not None:
            return self._routes[route].counts.snapshot()
        total = Counters()
        for rs in self._routes:
            total = total + rs.counts.snapshot()
        return total

    # -- one connection ----------------------------------------------------------------------

    def _make_handler(
        self, rs: _RouteState
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._handle(rs, reader, writer)

        return handler

    async def _handle(
        self, rs: _RouteState, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter
    ) -> None:
        if self._closing:
            cwriter.transport.abort()
            return
        t0 = self._clock()
        index = rs.next_index
        rs.next_index += 1
        conn = _Conn(rs, plan_connection(rs.route.faults, index), t0, self._wall())
        conn.cwriter = cwriter
        peer = cwriter.get_extra_info("peername")
        conn.client = f"{peer[0]}:{peer[1]}" if peer else "?"
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = conn
        rs.counts.accepted += 1
        rs.counts.active += 1
        end: EndReason = "error"
        error: str | None = None
        cancelled_in_close = False
        try:
            end, error = await self._serve(conn, creader)
        except asyncio.CancelledError:
            end = "shutdown"
        except Exception as exc:  # a bug must cost one connection, never the proxy
            end, error = "error", repr(exc)
        finally:
            try:
                for w in (conn.uwriter, cwriter):
                    if w is not None:
                        await self._close(w)
            except asyncio.CancelledError:
                # Cancelled while closing (a shutdown): the transports are aborted; the
                # bookkeeping below must still run so the record and counters are right.
                end, cancelled_in_close = "shutdown", True
            del self._conns[task]
            rs.counts.active -= 1
            rs.counts.closed += 1
            if end == "injected_reset":
                rs.counts.resets_injected += 1
            elif end in ("upstream_refused", "upstream_timeout"):
                rs.counts.upstream_failures += 1
            if conn.tax_started is not None:
                rs.counts.taxed += 1
            self._emit(conn, index, end, error)
            if cancelled_in_close:
                raise asyncio.CancelledError

    async def _close(self, w: asyncio.StreamWriter) -> None:
        if not w.transport.is_closing():
            w.close()
        try:
            await asyncio.wait_for(w.wait_closed(), self.settings.shutdown_timeout_s)
        except (OSError, asyncio.TimeoutError):
            w.transport.abort()
        except asyncio.CancelledError:
            w.transport.abort()
            raise

    def _emit(self, conn: _Conn, index: int, end: EndReason, error: str | None) -> None:
        if self._on_record is not None:
            self._on_record(conn.record(index, end, error, self._clock()))

    async def _serve(
        self, conn: _Conn, creader: asyncio.StreamReader
    ) -> tuple[EndReason, str | None]:
        plan = conn.plan
        cwriter = conn.cwriter
        assert cwriter is not None
        if plan.reset_at_connect:
            hard_reset(cwriter)
            return "injected_reset", None
        if plan.black_hole:
            await self._pump.swallow(conn, creader)
            return "black_hole", None
        if plan.dial_delay_ms > 0:
            t = self._clock()
            await wait_until(t + plan.dial_delay_ms / 1000.0, self._clock, self._sleep)
            conn.dial_applied = self._clock() - t
        host, port = conn.rs.route.upstream
        try:
            ureader, uwriter = await asyncio.wait_for(
                self._dial(host, port), self.settings.connect_timeout_s
            )
        except asyncio.TimeoutError:
            hard_reset(cwriter)
            return "upstream_timeout", f"no connection to {host}:{port} within " + (
                f"{self.settings.connect_timeout_s:g} s"
            )
        except OSError as exc:
            hard_reset(cwriter)
            return "upstream_refused", f"{host}:{port}: {exc.strerror or exc}"
        conn.uwriter = uwriter
        conn.upstream_connected = self._clock()

        c2u = asyncio.create_task(self._pump.run(Leg(conn, "c2u", creader, uwriter)))
        u2c = asyncio.create_task(self._pump.run(Leg(conn, "u2c", ureader, cwriter)))
        try:
            pending: set[asyncio.Task[None]] = {c2u, u2c}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for finished in done:
                    failure = finished.exception()
                    if failure is not None:
                        raise failure
        except InjectedReset:
            hard_reset(cwriter)
            hard_reset(uwriter)
            return "injected_reset", None
        except PeerGone as gone:
            # Pass the failure on the way a TCP proxy can: reset the other side too.
            hard_reset(cwriter)
            hard_reset(uwriter)
            return _END_OF_PEER[gone.side], repr(gone.exc)
        finally:
            for pump in (c2u, u2c):
                pump.cancel()
            await asyncio.wait({c2u, u2c})
        return "closed", None

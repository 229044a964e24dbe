"""The asyncio pump: the only module of ``lagscope inject`` that touches sockets and the clock.

:class:`Proxy` listens on every route, dials the upstream for each accepted connection
(in that connection's own task, so a slow or dead upstream never stalls the acceptor),
and runs one pump per direction. Each pump executes the connection's
:class:`~lagscope.inject.plan.ConnectionPlan`: it asks the pure functions in
``lagscope.inject.plan`` when a chunk may leave, waits, writes, and awaits ``drain()``.
Memory is bounded per direction: one read of at most ``chunk_bytes``, the StreamReader's
buffer (paused at about 2x ``reader_buffer_bytes``), the transport's write buffer (drain
blocks above its high-water mark) and, under per-chunk latency only, ``flow_buffer_bytes``
of chunks in flight.

When a connection ends, one :class:`~lagscope.inject.log.ConnectionRecord` goes to the
``on_record`` callback. The clock and the dialler are parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from lagscope.addresses import resolves_to_loopback
from lagscope.errors import ExitCode, LagscopeError
from lagscope.inject.config import ProxySettings
from lagscope.inject.log import ConnectionRecord, Counters, FlowRecord
from lagscope.inject.plan import (
    ConnectionPlan,
    Flow,
    FlowPlan,
    Route,
    chunk_release_s,
    jitter_rng,
    paced_start_s,
    plan_connection,
)

__all__ = ["Clock", "Dial", "Proxy", "hard_reset"]

Clock = Callable[[], float]
Dial = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Side = Literal["client", "upstream"]

# SO_LINGER {on, 0 s}: close() then sends RST instead of FIN, on every platform. Windows
# declares struct linger with two u_shorts, POSIX with two ints.
_LINGER_RST = struct.pack("HH", 1, 0) if sys.platform == "win32" else struct.pack("ii", 1, 0)


def hard_reset(writer: asyncio.StreamWriter | None) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0 + abort)."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Already dead: then abort() below is all that is left to do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


class _InjectedReset(Exception):
    pass


class _PeerGone(Exception):
    def __init__(self, side: Side, exc: BaseException) -> None:
        super().__init__(f"{side}: {exc!r}")
        self.side = side
        self.exc = exc


class _Counts:
    __slots__ = (
        "accepted",
        "active",
        "bytes_c2u",
        "bytes_u2c",
        "closed",
        "resets_injected",
        "taxed",
        "upstream_failures",
    )

    def __init__(self) -> None:
        self.accepted = self.active = self.closed = 0
        self.bytes_c2u = self.bytes_u2c = 0
        self.taxed = self.resets_injected = self.upstream_failures = 0

    def snapshot(self) -> Counters:
        return Counters(
            accepted=self.accepted,
            active=self.active,
            closed=self.closed,
            bytes_c2u=self.bytes_c2u,
            bytes_u2c=self.bytes_u2c,
            taxed=self.taxed,
            resets_injected=self.resets_injected,
            upstream_failures=self.upstream_failures,
        )


class _RouteState:
    def __init__(self, route: Route, name: str) -> None:
        self.route = route
        self.name = name
        self.next_index = 0
        self.counts = _Counts()
        self.server: asyncio.Server | None = None
        self.address: tuple[str, int] | None = None


class _FlowState:
    __slots__ = (
        "bytes",
        "chunks",
        "dropped",
        "eof_in",
        "eof_out",
        "first_in",
        "first_out",
        "held",
        "link_free",
    )

    def __init__(self) -> None:
        self.bytes = 0
        self.dropped = 0
        self.chunks = 0
        self.first_in: float | None = None
        self.first_out: float | None = None
        self.eof_in: float | None = None
        self.eof_out: float | None = None
        self.held = 0.0
        self.link_free = 0.0

    def record(self, t0: float) -> FlowRecord:
        def ms(t: float | None) -> float | None:
            return None if t is None else (t - t0) * 1000.0

        return FlowRecord(
            bytes=self.bytes,
            dropped_bytes=self.dropped,
            first_in_ms=ms(self.first_in),
            first_out_ms=ms(self.first_out),
            held_ms=self.held * 1000.0,
            eof_in_ms=ms(self.eof_in),
            eof_out_ms=ms(self.eof_out),
        )


class _Conn:
    def __init__(self, rs: _RouteState, plan: ConnectionPlan, t0: float, wall: float) -> None:
        self.rs = rs
        self.plan = plan
        self.t0 = t0
        self.wall = wall
        self.client = ""
        self.cwriter: asyncio.StreamWriter | None = None
        self.uwriter: asyncio.StreamWriter | None = None
        self.upstream_connected: float | None = None
        self.tax_started: float | None = None
        self.tax_deadline: float | None = None
        self.tax_applied: float | None = None
        self.dial_applied: float | None = None
        self.flows: dict[Flow, _FlowState] = {"c2u": _FlowState(), "u2c": _FlowState()}


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
        self._dial = dial or self._open
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self._closing = False

    async def _open(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(host, port, limit=self.settings.reader_buffer_bytes)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closing:
            raise RuntimeError("a closed Proxy cannot be started again; make a new one")
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
                server = await asyncio.start_server(
                    self._make_handler(rs),
                    host,
                    port,
                    limit=self.settings.reader_buffer_bytes,
                    backlog=self.settings.backlog,
                )
            except OSError as exc:
                await self.aclose()
                raise LagscopeError(
                    "listen",
                    f"cannot listen on {host}:{port} ({rs.name}): {exc.strerror or exc}",
                    ExitCode.ENVIRONMENT,
                ) from None
            rs.server = server
            sockname = server.sockets[0].getsockname()
            rs.address = (str(sockname[0]), int(sockname[1]))

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        for rs in self._routes:
            if rs.server is not None:
                rs.server.close()
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
            if rs.server is not None:
                await rs.server.wait_closed()

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
        end, error = "error", None
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

    def _emit(self, conn: _Conn, index: int, end: str, error: str | None) -> None:
        if self._on_record is None:
            return
        t0 = conn.t0
        rs = conn.rs

        def ms(t: float | None) -> float | None:
            return None if t is None else (t - t0) * 1000.0

        host, port = rs.route.upstream
        self._on_record(
            ConnectionRecord(
                id=f"{rs.name}#{index}",
                route=rs.name,
                index=index,
                client=conn.client,
                upstream=f"{host}:{port}",
                faults=conn.plan.applied,
                accepted_at=conn.wall,
                upstream_connected_ms=ms(conn.upstream_connected),
                closed_ms=(self._clock() - t0) * 1000.0,
                tax_applied_ms=None if conn.tax_applied is None else conn.tax_applied * 1000.0,
                dial_delay_applied_ms=(
                    None if conn.dial_applied is None else conn.dial_applied * 1000.0
                ),
                c2u=conn.flows["c2u"].record(t0),
                u2c=conn.flows["u2c"].record(t0),
                end=end,
                error=error,
            )
        )

    async def _serve(self, conn: _Conn, creader: asyncio.StreamReader) -> tuple[str, str | None]:
        plan = conn.plan
        cwriter = conn.cwriter
        assert cwriter is not None
        if plan.reset_at_connect:
            hard_reset(cwriter)
            return "injected_reset", None
        if plan.black_hole:
            await self._swallow(conn, creader)
            return "black_hole", None
        if plan.dial_delay_ms > 0:
            t = self._clock()
            await asyncio.sleep(plan.dial_delay_ms / 1000.0)
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

        c2u = asyncio.create_task(self._pump(conn, "c2u", creader, uwriter))
        u2c = asyncio.create_task(self._pump(conn, "u2c", ureader, cwriter))
        try:
            pending: set[asyncio.Task[None]] = {c2u, u2c}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for finished in done:
                    failure = finished.exception()
                    if failure is not None:
                        raise failure
        except _InjectedReset:
            hard_reset(cwriter)
            hard_reset(uwriter)
            return "injected_reset", None
        except _PeerGone as gone:
            # Pass the failure on the way a TCP proxy can: reset the other side too.
            hard_reset(cwriter)
            hard_reset(uwriter)
            return f"{gone.side}_reset", repr(gone.exc)
        finally:
            for pump in (c2u, u2c):
                pump.cancel()
            await asyncio.wait({c2u, u2c})
        return "closed", None

    async def _swallow(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        st = conn.flows["c2u"]
        while True:
            try:
                data = await reader.read(self.settings.chunk_bytes)
            except OSError:
                return
            if not data:
                st.eof_in = self._clock()
                return
            if st.first_in is None:
                st.first_in = self._clock()
            st.dropped += len(data)

    # -- one direction ---------------------------------------------------------------------

    def _gate(self, conn: _Conn, fp: FlowPlan, st: _FlowState, now: float) -> float:
        """Earliest departure of a chunk read at ``now`` under the tax and first-chunk delay."""
        t = now
        if st.chunks == 0:
            if fp.tax:
                if conn.tax_deadline is None:
                    conn.tax_started = now
                    conn.tax_deadline = now + conn.plan.tax_ms / 1000.0
                t = max(t, conn.tax_deadline)
            if fp.first_delay_ms:
                t += fp.first_delay_ms / 1000.0
        st.chunks += 1
        return t

    def _sent_first(self, conn: _Conn, fp: FlowPlan, st: _FlowState) -> None:
        st.first_out = now = self._clock()
        if fp.tax and conn.tax_applied is None and conn.tax_started is not None:
            conn.tax_applied = now - conn.tax_started

    async def _pump(
        self,
        conn: _Conn,
        flow: Flow,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        fp = conn.plan.flow(flow)
        st = conn.flows[flow]
        near: Side = "client" if flow == "c2u" else "upstream"
        far: Side = "upstream" if flow == "c2u" else "client"
        if fp.per_chunk:
            await self._pump_per_chunk(conn, flow, fp, st, reader, writer, near, far)
        else:
            await self._pump_inline(conn, flow, fp, st, reader, writer, near, far)
        st.eof_in = self._clock()
        if fp.slow_close_ms > 0:
            t = self._clock()
            await asyncio.sleep(fp.slow_close_ms / 1000.0)
            st.held += self._clock() - t
        try:
            if not writer.transport.is_closing() and writer.can_write_eof():
                writer.write_eof()
        except OSError as exc:
            raise _PeerGone(far, exc) from None
        st.eof_out = self._clock()

    def _read_size(self, fp: FlowPlan) -> int:
        size = self.settings.chunk_bytes
        if fp.bytes_per_s is not None:
            # About 50 ms of data per chunk, so the cap is smooth rather than bursty.
            size = max(1, min(size, fp.bytes_per_s // 20))
        return size

    async def _pump_inline(
        self,
        conn: _Conn,
        flow: Flow,
        fp: FlowPlan,
        st: _FlowState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        near: Side,
        far: Side,
    ) -> None:
        counts = conn.rs.counts
        clock = self._clock
        size = self._read_size(fp)
        passthrough = fp.passthrough
        c2u = flow == "c2u"
        while True:
            try:
                data = await reader.read(size)
            except OSError as exc:
                raise _PeerGone(near, exc) from None
            if not data:
                return
            n = len(data)
            if passthrough:
                writer.write(data)
                if st.first_out is None:
                    st.first_in = st.first_out = clock()
                    st.chunks += 1
                reset = False
            else:
                now = clock()
                if st.first_in is None:
                    st.first_in = now
                if fp.black_hole:
                    st.dropped += n
                    continue
                release = self._gate(conn, fp, st, now)
                if fp.bytes_per_s is not None:
                    release, st.link_free = paced_start_s(release, n, fp.bytes_per_s, st.link_free)
                if release > now:
                    await asyncio.sleep(release - now)
                    st.held += clock() - now
                reset = False
                if fp.reset_after_bytes is not None:
                    remaining = fp.reset_after_bytes - st.bytes
                    if n >= remaining:
                        data, n, reset = data[:remaining], remaining, True
                if n:
                    writer.write(data)
                    if st.first_out is None:
                        self._sent_first(conn, fp, st)
            st.bytes += n
            if c2u:
                counts.bytes_c2u += n
            else:
                counts.bytes_u2c += n
            try:
                await writer.drain()
            except OSError as exc:
                raise _PeerGone(far, exc) from None
            if reset:
                await self._flush(writer)
                raise _InjectedReset

    async def _flush(self, writer: asyncio.StreamWriter) -> None:
        # drain() returns below the low-water mark; a reset must not cut bytes we promised
        # to forward, so wait (bounded) until the transport buffer is empty.
        deadline = self._clock() + self.settings.shutdown_timeout_s
        while writer.transport.get_write_buffer_size() and self._clock() < deadline:
            await asyncio.sleep(0.001)

    async def _pump_per_chunk(
        self,
        conn: _Conn,
        flow: Flow,
        fp: FlowPlan,
        st: _FlowState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        near: Side,
        far: Side,
    ) -> None:
        """Per-chunk latency: a reader task stamps and queues chunks (bounded by
        ``flow_buffer_bytes``) while this task releases each at read time + delay."""
        counts = conn.rs.counts
        clock = self._clock
        size = self._read_size(fp)
        limit = self.settings.flow_buffer_bytes
        queue: deque[tuple[float, float, bytes]] = deque()
        buffered = 0
        have = asyncio.Event()
        space = asyncio.Event()
        rng = jitter_rng(conn.plan.jitter_seed, conn.plan.index, flow)

        async def produce() -> None:
            nonlocal buffered
            prev = 0.0
            try:
                while True:
                    while buffered >= limit:
                        space.clear()
                        await space.wait()
                    try:
                        data = await reader.read(size)
                    except OSError as exc:
                        raise _PeerGone(near, exc) from None
                    if not data:
                        return
                    now = clock()
                    if st.first_in is None:
                        st.first_in = now
                    if fp.black_hole:
                        st.dropped += len(data)
                        continue
                    gate = self._gate(conn, fp, st, now)
                    prev = chunk_release_s(gate, fp, rng.random(), prev)
                    queue.append((now, prev, data))
                    buffered += len(data)
                    have.set()
            finally:
                have.set()

        producer = asyncio.create_task(produce())
        try:
            while True:
                if not queue:
                    if producer.done():
                        producer.result()  # re-raises a _PeerGone from the reader
                        return
                    have.clear()
                    await have.wait()
                    continue
                read_at, release, data = queue.popleft()
                buffered -= len(data)
                space.set()
                n = len(data)
                if fp.bytes_per_s is not None:
                    release, st.link_free = paced_start_s(release, n, fp.bytes_per_s, st.link_free)
                now = clock()
                if release > now:
                    await asyncio.sleep(release - now)
                    st.held += clock() - read_at
                reset = False
                if fp.reset_after_bytes is not None:
                    remaining = fp.reset_after_bytes - st.bytes
                    if n >= remaining:
                        data, n, reset = data[:remaining], remaining, True
                if n:
                    writer.write(data)
                    if st.first_out is None:
                        self._sent_first(conn, fp, st)
                st.bytes += n
                if flow == "c2u":
                    counts.bytes_c2u += n
                else:
                    counts.bytes_u2c += n
                try:
                    await writer.drain()
                except OSError as exc:
                    raise _PeerGone(far, exc) from None
                if reset:
                    await self._flush(writer)
                    raise _InjectedReset
        finally:
            producer.cancel()
            await asyncio.wait({producer})

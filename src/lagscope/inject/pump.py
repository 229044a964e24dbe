"""One direction of a proxied connection: read, wait out the plan, write, drain.

This module owns the forwarding loop of ``lagscope inject``. :class:`Pump` executes one
direction (a :class:`Leg`) of a connection's :class:`~lagscope.inject.plan.ConnectionPlan`:
it asks the pure functions in ``lagscope.inject.plan`` when a chunk may leave, waits until
then on the clock it was given, and hands the chunk to :meth:`Pump.forward`, the one
routine that paces a bandwidth cap, cuts an injected reset, writes, counts and drains for
both paths (inline, and per-chunk latency with a reader running ahead). Memory is bounded
per direction: one read of at most ``chunk_bytes``, the StreamReader's buffer, the
transport's write buffer (drain blocks above its high-water mark) and, under per-chunk
latency only, ``flow_buffer_bytes`` of chunks in flight. It also owns the TCP reset
(:func:`hard_reset`) and the per-connection mutable state the pump and the proxy share.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from lagscope.inject.faults import Fault, Flow
from lagscope.inject.log import Counters, FlowRecord
from lagscope.inject.plan import (
    ConnectionPlan,
    FlowPlan,
    chunk_release_s,
    jitter_rng,
    paced_start_s,
)

__all__ = [
    "COARSE_TIMER_MS",
    "Clock",
    "ConnState",
    "Counts",
    "FlowState",
    "InjectedReset",
    "Leg",
    "PeerGone",
    "Pump",
    "Side",
    "Sleep",
    "coarse_timer_note",
    "hard_reset",
    "wait_until",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Side = Literal["client", "upstream"]

# Windows before Python 3.13 runs asyncio timers on the 15.6 ms system tick (cpython#110695).
COARSE_TIMER_MS = 15.6

# SO_LINGER {on, 0 s}: close() then sends RST instead of FIN. The struct is the OS's ABI:
# Windows declares struct linger with two u_shorts, POSIX with two ints.
_LINGER_RST = struct.pack("HH", 1, 0) if sys.platform == "win32" else struct.pack("ii", 1, 0)


def hard_reset(
    writer: asyncio.StreamWriter | None, *, take_handle: bool = sys.platform == "win32"
) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0, then close).

    ``take_handle`` (the default on Windows): Proactor transports call
    ``shutdown(SHUT_RDWR)`` before ``close()``, so a FIN leaves before the linger-0 RST and
    the peer reads a clean end-of-stream first. The socket handle is therefore detached
    from the transport (whose shutdown and close then do nothing) and closed here, which
    sends the RST alone.
    """
    if writer is None or writer.transport.is_closing():
        return
    transport = writer.transport
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Already dead: then closing below is all that is left to do.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    raw = getattr(transport, "_sock", None) if take_handle else None
    if isinstance(raw, socket.socket) and raw.fileno() != -1:
        handle = raw.detach()
        transport.abort()
        socket.socket(fileno=handle).close()
        return
    transport.abort()


async def wait_until(release_s: float, clock: Clock, sleep: Sleep) -> None:
    """Sleep until ``clock() >= release_s``; a timer that wakes early is slept again.

    Windows timers before Python 3.13 can fire up to a tick (15.6 ms) early, so one sleep
    of the remaining time would make a fault short.
    """
    left = release_s - clock()
    while left > 0:
        await sleep(left)
        left = release_s - clock()


def coarse_timer_note(
    faults: Iterable[Fault], platform: str, version: tuple[int, int]
) -> str | None:
    """A warning when a fault waits less than a tick of a coarse system timer, else None."""
    if platform != "win32" or version >= (3, 13):
        return None
    short = sorted({w for fault in faults for w in fault.waits_ms() if 0 < w < COARSE_TIMER_MS})
    if not short:
        return None
    shown = ", ".join(f"{w:g}" for w in short)
    return (
        f"waits of {shown} ms are below the {COARSE_TIMER_MS:g} ms timer tick of Windows "
        "before Python 3.13: they last up to one tick longer (never shorter); use Python "
        "3.13+ for finer faults"
    )


class InjectedReset(Exception):
    """A Reset fault fired: the proxy resets both sides."""


class PeerGone(Exception):
    """One side broke the connection (reset, abort); ``side`` says which."""

    def __init__(self, side: Side, exc: BaseException) -> None:
        super().__init__(f"{side}: {exc!r}")
        self.side = side
        self.exc = exc


class Counts:
    """A route's live counters (mutable; :meth:`snapshot` freezes them)."""

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


class FlowState:
    """What one direction did so far (times on the proxy's clock)."""

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


class ConnState:
    """The part of a connection's state both directions share: the plan and the tax."""

    def __init__(self, plan: ConnectionPlan, counts: Counts, t0: float) -> None:
        self.plan = plan
        self.counts = counts
        self.t0 = t0
        self.tax_started: float | None = None
        self.tax_deadline: float | None = None
        self.tax_applied: float | None = None
        self.flows: dict[Flow, FlowState] = {"c2u": FlowState(), "u2c": FlowState()}


class Leg:
    """One direction of one connection while it is pumped: its plan and state, the socket
    it reads and the one it writes, and which side each of them is."""

    __slots__ = ("conn", "far", "flow", "near", "plan", "reader", "state", "writer")

    def __init__(
        self,
        conn: ConnState,
        flow: Flow,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.conn = conn
        self.flow = flow
        self.plan = conn.plan.flow(flow)
        self.state = conn.flows[flow]
        self.reader = reader
        self.writer = writer
        self.near: Side = "client" if flow == "c2u" else "upstream"
        self.far: Side = "upstream" if flow == "c2u" else "client"


class Pump:
    """Forwards one direction of connections, as their plans say.

    ``clock`` (seconds, monotonic) and ``sleep`` are the proxy's; ``flush_timeout_s``
    bounds the wait for a write buffer to empty before an injected reset.
    """

    def __init__(
        self,
        *,
        chunk_bytes: int,
        flow_buffer_bytes: int,
        flush_timeout_s: float,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.chunk_bytes = chunk_bytes
        self.flow_buffer_bytes = flow_buffer_bytes
        self.flush_timeout_s = flush_timeout_s
        self.clock = clock
        self.sleep = sleep

    async def run(self, leg: Leg) -> None:
        """Forward one direction until end-of-stream, then pass the half-close on.

        Raises :class:`PeerGone` when a side breaks the connection and
        :class:`InjectedReset` when the plan resets it.
        """
        fp, st, writer = leg.plan, leg.state, leg.writer
        if fp.per_chunk:
            await self._per_chunk(leg)
        else:
            await self._inline(leg)
        st.eof_in = self.clock()
        if fp.slow_close_ms > 0:
            t = self.clock()
            await wait_until(t + fp.slow_close_ms / 1000.0, self.clock, self.sleep)
            st.held += self.clock() - t
        try:
            if not writer.transport.is_closing() and writer.can_write_eof():
                writer.write_eof()
        except OSError as exc:
            raise PeerGone(leg.far, exc) from None
        st.eof_out = self.clock()

    async def swallow(self, conn: ConnState, reader: asyncio.StreamReader) -> None:
        """Black hole in both directions: read the client's bytes and drop them until it
        closes (no upstream exists)."""
        st = conn.flows["c2u"]
        while True:
            try:
                data = await reader.read(self.chunk_bytes)
            except OSError:
                return
            if not data:
                st.eof_in = self.clock()
                return
            if st.first_in is None:
                st.first_in = self.clock()
            st.dropped += len(data)

    def _read_size(self, fp: FlowPlan) -> int:
        size = self.chunk_bytes
        if fp.bytes_per_s is not None:
            # About 50 ms of data per chunk, so the cap is smooth rather than bursty.
            size = max(1, min(size, fp.bytes_per_s // 20))
        return size

    def _gate(self, leg: Leg, now: float) -> float:
        """Earliest departure of a chunk read at ``now`` under the tax and first-chunk delay."""
        conn, fp, st = leg.conn, leg.plan, leg.state
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

    async def forward(self, leg: Leg, data: bytes, release: float, read_at: float) -> None:
        """Send one chunk no earlier than ``release`` and, under a bandwidth cap, once the
        link is free: wait, cut at a planned reset, write, count and drain. The one ending
        of both pump paths."""
        conn, fp, st, writer = leg.conn, leg.plan, leg.state, leg.writer
        clock = self.clock
        n = len(data)
        if fp.bytes_per_s is not None:
            release, st.link_free = paced_start_s(release, n, fp.bytes_per_s, st.link_free)
        if release > clock():
            await wait_until(release, clock, self.sleep)
            st.held += clock() - read_at
        reset = False
        if fp.reset_after_bytes is not None:
            remaining = fp.reset_after_bytes - st.bytes
            if n >= remaining:
                data, n, reset = data[:remaining], remaining, True
        if n:
            writer.write(data)
            if st.first_out is None:
                st.first_out = now = clock()
                if fp.tax and conn.tax_applied is None and conn.tax_started is not None:
                    conn.tax_applied = now - conn.tax_started
        st.bytes += n
        if leg.flow == "c2u":
            conn.counts.bytes_c2u += n
        else:
            conn.counts.bytes_u2c += n
        try:
            await writer.drain()
        except OSError as exc:
            raise PeerGone(leg.far, exc) from None
        if reset:
            await self._flush(writer)
            raise InjectedReset

    async def _read(self, leg: Leg, size: int) -> tuple[bytes, float] | None:
        """One chunk and when it was read; None at end of stream. A black hole's chunk is
        counted as dropped and comes back empty."""
        try:
            data = await leg.reader.read(size)
        except OSError as exc:
            raise PeerGone(leg.near, exc) from None
        if not data:
            return None
        now = self.clock()
        st = leg.state
        if st.first_in is None:
            st.first_in = now
        if leg.plan.black_hole:
            st.dropped += len(data)
            return b"", now
        return data, now

    async def _flush(self, writer: asyncio.StreamWriter) -> None:
        # drain() returns below the low-water mark; a reset must not cut bytes we promised
        # to forward, so wait (bounded) until the transport buffer is empty.
        deadline = self.clock() + self.flush_timeout_s
        while writer.transport.get_write_buffer_size() and self.clock() < deadline:
            await asyncio.sleep(0.001)

    async def _inline(self, leg: Leg) -> None:
        size = self._read_size(leg.plan)
        while (got := await self._read(leg, size)) is not None:
            data, now = got
            if data:  # empty: dropped by a black hole
                await self.forward(leg, data, self._gate(leg, now), now)

    async def _per_chunk(self, leg: Leg) -> None:
        """Per-chunk latency: a reader task stamps and queues chunks (bounded by
        ``flow_buffer_bytes``) while this task releases each at read time + delay."""
        fp = leg.plan
        size = self._read_size(fp)
        limit = self.flow_buffer_bytes
        queue: deque[tuple[float, float, bytes]] = deque()
        buffered = 0
        have = asyncio.Event()
        space = asyncio.Event()
        rng = jitter_rng(leg.conn.plan.jitter_seed, leg.conn.plan.index, leg.flow)

        async def produce() -> None:
            nonlocal buffered
            prev = 0.0
            try:
                while True:
                    while buffered >= limit:
                        space.clear()
                        await space.wait()
                    got = await self._read(leg, size)
                    if got is None:
                        return
                    data, now = got
                    if not data:
                        continue  # dropped by a black hole
                    prev = chunk_release_s(self._gate(leg, now), fp, rng.random(), prev)
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
                        producer.result()  # re-raises a PeerGone from the reader
                        return
                    have.clear()
                    await have.wait()
                    continue
                read_at, release, data = queue.popleft()
                buffered -= len(data)
                space.set()
                await self.forward(leg, data, release, read_at)
        finally:
            producer.cancel()
            await asyncio.wait({producer})

"""Fault sources for the ghost stacks, independent of lagscope's own ``inject``.

* :func:`tax_proxy`: an asyncio TCP forwarder that delays a connection when it is accepted
  (before it connects upstream; a fixed delay, or one per connection as jittered or
  intermittent filters do), its first request bytes, every response, or every response
  chunk in proportion to its size (a scanner that inspects the body).
* :class:`SlowConnectNetwork`: real sockets whose ``connect()`` is held before the
  handshake, as a connect-level filter (a WFP callout) holds it on the user's machine.
* :func:`dns_server` and :class:`DnsNetwork`: a UDP DNS server on loopback that answers
  after a delay, and a network whose resolver asks it (A and AAAA in parallel, as glibc).
* :func:`blackholed_ipv6`: a listener on ``[::1]:PORT`` whose accept queue is full, so the
  kernel drops further SYNs, and :class:`HostsNetwork`, a resolver that puts ::1 first.
* :func:`runserver`: Django's own development server (``ThreadedWSGIServer`` with its
  request handler), serving an app in a background thread.

Every server binds port 0 on loopback and is awaited on its readiness, never a sleep.
:func:`check` holds a report to the ghost's truth: the ids at warning or above, and each
cost within 15 % (or 5 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from lagscope.diagnose.model import DiagnoseReport
from lagscope.probe.net import SockAddr, Stream, SystemNetwork

__all__ = [
    "DnsNetwork",
    "DnsServer",
    "HostsNetwork",
    "SlowConnectNetwork",
    "TaxProxy",
    "blackholed_ipv6",
    "check",
    "dns_server",
    "runserver",
    "tax_proxy",
]


def check(report: DiagnoseReport, expected: dict[str, float | None]) -> None:
    """``expected``: finding id -> injected truth in ms (None: the cost is not checked)."""
    problems = {f.id: f for f in report.problems}
    shown = {f.id: (f.severity, f.cost_ms) for f in report.findings}
    assert set(problems) == set(expected), shown
    for finding_id, truth in expected.items():
        cost = problems[finding_id].cost_ms
        if truth is None:
            continue
        assert cost is not None, shown
        assert abs(cost - truth) <= max(5.0, 0.15 * truth), (finding_id, cost, truth, shown)


# --- a taxing forwarder -------------------------------------------------------------------


class TaxProxy(tuple[str, int]):
    """The forwarder's address, and each delay it really applied (ms): on a loaded machine
    a sleep overshoots, and the truth is what the connection waited."""

    applied_ms: list[float]

    def truth_ms(self) -> float:
        return statistics.median(self.applied_ms)


@contextmanager
def tax_proxy(
    upstream: tuple[str, int],
    *,
    on_accept_s: float = 0.0,
    first_data_s: float = 0.0,
    every_response_s: float = 0.0,
    accept_delay_s: Callable[[int], float] | None = None,
    response_s_per_mb: float = 0.0,
) -> Iterator[TaxProxy]:
    """Forward loopback connections to ``upstream``, paying ``on_accept_s`` before the
    upstream connect (or ``accept_delay_s(n)`` for the n-th connection, from 0; a delay of 0
    is not recorded), ``first_data_s`` before forwarding a connection's first request
    bytes, ``every_response_s`` before forwarding each response, and ``response_s_per_mb``
    per megabyte (10**6 bytes) before forwarding each chunk of a response (recorded per
    response: the sum over its chunks)."""
    applied: list[float] = []
    accepted = [0]

    async def pay(seconds: float) -> None:
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        applied.append((time.perf_counter() - t0) * 1e3)

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: list[Any] = []
    tasks: set[asyncio.Task[None]] = set()

    async def pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delay_first_s: float,
        mark: list[bool] | None,
        wait_mark: list[bool] | None,
        held: list[float] | None = None,
    ) -> None:
        first = True
        try:
            while data := await reader.read(65536):
                if first and delay_first_s:
                    await pay(delay_first_s)
                if held is not None and mark is not None and held[0]:
                    # A new request: the previous response was held this long in all.
                    applied.append(held[0])
                    held[0] = 0.0
                if held is not None and mark is None:
                    t0 = time.perf_counter()
                    await asyncio.sleep(response_s_per_mb * len(data) / 1e6)
                    held[0] += (time.perf_counter() - t0) * 1e3
                first = False
                if wait_mark is not None and wait_mark[0]:
                    wait_mark[0] = False
                    await pay(every_response_s)
                if mark is not None:
                    mark[0] = True
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.close()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            # What a connection waits here: the delay and the upstream connect after it.
            t0 = time.perf_counter()
            delay_s = on_accept_s if accept_delay_s is None else accept_delay_s(accepted[0])
            accepted[0] += 1
            if delay_s:
                await asyncio.sleep(delay_s)
            up_reader, up_writer = await asyncio.open_connection(*upstream)
            if delay_s:
                applied.append((time.perf_counter() - t0) * 1e3)
            pending = [False]  # a request went up; its response pays every_response_s
            # What the response in flight was held in proportion to its size, in all (ms).
            held = [0.0] if response_s_per_mb else None
            await asyncio.gather(
                pump(
                    reader,
                    up_writer,
                    first_data_s,
                    pending if every_response_s or held else None,
                    None,
                    held,
                ),
                pump(up_reader, writer, 0.0, None, pending if every_response_s else None, held),
            )
            if held and held[0]:
                applied.append(held[0])
        except (ConnectionError, OSError):
            writer.close()
        finally:
            tasks.discard(task)

    async def main() -> None:
        server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        box.append(server.sockets[0].getsockname()[1])
        stop = asyncio.Event()
        box.append(stop)
        ready.set()
        await stop.wait()
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("tax proxy did not start")
    proxy = TaxProxy(("127.0.0.1", int(box[0])))
    proxy.applied_ms = applied
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(box[1].set)
        thread.join(10)
        loop.close()


# --- a slow DNS server and a resolver that asks it ------------------------------------------

_A, _AAAA = 1, 28


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".")) + b"\0"


def _parse_question(packet: bytes) -> tuple[int, str, int, int]:
    """(id, name, qtype, end of the question) of a query."""
    qid = struct.unpack("!H", packet[:2])[0]
    labels: list[str] = []
    i = 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii"))
        i += 1 + n
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0]
    return qid, ".".join(labels).lower(), qtype, i + 5


class DnsServer(int):
    """The DNS server's port, and each delay it really applied (ms) before answering."""

    applied_ms: list[float]


@contextmanager
def dns_server(records: Mapping[str, Sequence[str]], delay_s: float) -> Iterator[DnsServer]:
    """A UDP DNS server on 127.0.0.1 answering A/AAAA for ``records`` after ``delay_s``
    (each answer on its own timer, so parallel queries wait once); yields its port."""
    applied: list[float] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    stop = threading.Event()
    timers: list[threading.Timer] = []

    def answer(packet: bytes, peer: Any, received: float) -> None:
        applied.append((time.perf_counter() - received) * 1e3)
        qid, name, qtype, end = _parse_question(packet)
        family = socket.AF_INET if qtype == _A else socket.AF_INET6
        addrs = [a for a in records.get(name, ()) if (":" in a) == (family == socket.AF_INET6)]
        header = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0)
        body = packet[12:end]
        for a in addrs:
            raw = socket.inet_pton(family, a)
            body += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(raw)) + raw
        if not stop.is_set():
            with contextlib.suppress(OSError):
                sock.sendto(header + body, peer)

    def serve() -> None:
        while not stop.is_set():
            try:
                packet, peer = sock.recvfrom(4096)
            except OSError:
                return
            timer = threading.Timer(delay_s, answer, (packet, peer, time.perf_counter()))
            timer.daemon = True
            timers.append(timer)
            timer.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    server = DnsServer(port)
    server.applied_ms = applied
    try:
        yield server
    finally:
        stop.set()
        for timer in timers:
            timer.cancel()
        sock.close()
        thread.join(5)


class DnsNetwork(SystemNetwork):
    """Real sockets, names resolved by asking one DNS server (A and AAAA in parallel, as
    glibc does), IPv6 answers first."""

    def __init__(self, server_port: int, timeout_s: float = 5.0) -> None:
        self.server = ("127.0.0.1", server_port)
        self.timeout_s = timeout_s

    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        qtypes: tuple[int, ...] = (_AAAA, _A)
        if family == socket.AF_INET:
            qtypes = (_A,)
        elif family == socket.AF_INET6:
            qtypes = (_AAAA,)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(self.timeout_s)
        answers: dict[int, list[str]] = {}
        try:
            for n, qtype in enumerate(qtypes):
                query = struct.pack("!HHHHHH", n + 1, 0x0100, 1, 0, 0, 0)
                sock.sendto(query + _qname(host) + struct.pack("!HH", qtype, 1), self.server)
            while len(answers) < len(qtypes):
                packet = sock.recv(4096)
                _qid, _, qtype, end = _parse_question(packet)
                count = struct.unpack("!H", packet[6:8])[0]
                got: list[str] = []
                i = end
                for _ in range(count):
                    rtype, _cls, _ttl, size = struct.unpack("!HHIH", packet[i + 2 : i + 12])
                    raw = packet[i + 12 : i + 12 + size]
                    fam = socket.AF_INET6 if rtype == _AAAA else socket.AF_INET
                    got.append(socket.inet_ntop(fam, raw))
                    i += 12 + size
                answers[qtype] = got
        finally:
            sock.close()
        out: list[tuple[int, SockAddr]] = []
        for qtype in qtypes:
            for a in answers.get(qtype, []):
                if qtype == _AAAA:
                    out.append((socket.AF_INET6, (a, port, 0, 0)))
                else:
                    out.append((socket.AF_INET, (a, port)))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return out


# --- ::1 that drops connects -----------------------------------------------------------------


class HostsNetwork(SystemNetwork):
    """Real sockets, names from a fixed table (as a hosts file that lists ::1 first, the way
    Windows resolves localhost)."""

    def __init__(self, hosts: Mapping[str, Sequence[str]]) -> None:
        self.hosts = {k.lower(): list(v) for k, v in hosts.items()}

    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        out: list[tuple[int, SockAddr]] = []
        for a in self.hosts.get(host.lower(), []):
            if ":" in a and family in (socket.AF_UNSPEC, socket.AF_INET6):
                out.append((socket.AF_INET6, (a, port, 0, 0)))
            elif ":" not in a and family in (socket.AF_UNSPEC, socket.AF_INET):
                out.append((socket.AF_INET, (a, port)))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return out


class SlowConnectNetwork(SystemNetwork):
    """Real sockets whose every ``connect()`` is held ``delay_s`` before the SYN leaves, as
    a connect-level filter on the user's machine holds it (a user-space proxy cannot delay
    the kernel's handshake, and loopback has no netem without root). ``applied_ms``: each
    hold really waited."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.applied_ms: list[float] = []

    def connect(self, family: int, address: SockAddr, timeout_s: float) -> Stream:
        t0 = time.perf_counter()
        time.sleep(min(self.delay_s, timeout_s))
        self.applied_ms.append((time.perf_counter() - t0) * 1e3)
        return super().connect(family, address, max(0.001, timeout_s - self.delay_s))


@contextmanager
def blackholed_ipv6(port: int) -> Iterator[None]:
    """``[::1]:port`` listening with a full accept queue that is never drained: Linux then
    drops new SYNs, so a connect there hangs as behind a firewall that drops packets."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("::1", port))
        listener.listen(0)
        # Fill the queue: connects complete until it is full, then the next one hangs.
        for _ in range(8):
            c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            fillers.append(c)
            c.settimeout(0.3)
            try:
                c.connect(("::1", port))
            except TimeoutError:
                break
        else:
            raise RuntimeError("the accept queue of [::1] never filled")
        yield
    finally:
        for c in fillers:
            c.close()
        listener.close()


# --- Django's development server ---------------------------------------------------------------


@contextmanager
def runserver(app: Any) -> Iterator[tuple[str, int]]:
    """Django's ``runserver`` server and request handler (a thread per connection; head and
    body in separate writes, no TCP_NODELAY), on 127.0.0.1 port 0."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    httpd = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler, allow_reuse_address=True)
    httpd.set_app(app)
    port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield "127.0.0.1", port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)

"""The measuring shell: runs the cold and warm series and records every phase.

This is the only probe module that does I/O, and it does it through the ``network`` and
``clock`` it is given. HTTP/1.1 framing is h11's; this module only decides where each
phase starts and ends:

- resolve: the call to the network's resolver (skipped when the address is pinned);
- connect: from the first connect attempt to the connected socket, through every address
  that failed before it, so an IPv6 fallback shows up here;
- tls: the handshake; send: writing the request; wait: end of send to the first response
  byte; receive: first byte to the end of the body; total: the whole request.

Requests of the two series are interleaved (cold, warm, cold, warm...) after the warm
connection's first request, so slow drifts of a noisy machine hit both series alike.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import h11

from lagscope import __version__, redact
from lagscope.addresses import is_localhost_name
from lagscope.errors import ExitCode, LagscopeError
from lagscope.instrument.servertiming import Metric, believable, parse_headers
from lagscope.netutil import classify_oserror
from lagscope.probe.model import (
    AddressAttempt,
    Family,
    KeepAlive,
    Outcome,
    ProbeReport,
    RequestRecord,
    dropped_note,
)
from lagscope.probe.net import Clock, Network, SockAddr, Stream, SystemClock, SystemNetwork
from lagscope.probe.options import ProbeOptions, is_loopback_host
from lagscope.probe.report import RunFacts, build_report

if TYPE_CHECKING:
    import ssl

__all__ = [
    "BodyCapError",
    "Client",
    "Connection",
    "Exchange",
    "Progress",
    "RunDeadline",
    "make_record",
    "run_probe",
]

# (series name, requests done, requests planned)
Progress = Callable[[str, int, int], None]

_RECV_BYTES = 65536
# A reused connection found closed sooner than this after its last response means the
# server closes after every response (silently), not that an idle timeout expired.
SILENT_CLOSE_IDLE_S = 1.0
# How long one address of a name may take to connect before the next is tried: RFC 8305's
# recommended Connection Attempt Delay (Chrome waits 300 ms before IPv4). An address that
# drops packets then costs this much, not the whole connect timeout.
ADDRESS_ATTEMPT_DELAY_S = 0.25
_NS_PER_MS = 1_000_000
_END_OF_MESSAGE = h11.EndOfMessage()  # events are immutable: one serves every request
_FAMILY_NAMES: dict[int, str] = {int(socket.AF_INET): "ipv4", int(socket.AF_INET6): "ipv6"}


def _ms(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / _NS_PER_MS


def _family_name(family: int) -> Family:
    return "ipv6" if family == socket.AF_INET6 else "ipv4"


def _outcome(exc: BaseException) -> Outcome:
    # By errno / winerror, never by message text (Windows localises it).
    kind = classify_oserror(exc)
    return kind if kind in ("refused", "timeout", "unreachable") else "error"


class _StaleConnection(Exception):
    """A reused connection turned out to be closed by the server before our request."""


class BodyCapError(LagscopeError):
    """A response body beyond ``max_body_bytes``. The message names no flag: a command
    that lets the user raise the cap (probe's --max-body) adds that itself."""

    def __init__(self, cap_bytes: int, where: str) -> None:
        super().__init__(
            "receive", f"body larger than the cap of {cap_bytes} bytes ({where})", ExitCode.PROTOCOL
        )
        self.cap_bytes = cap_bytes


class RunDeadline(Exception):
    """The run's time limit (``--max-time``) ran out in the middle of a request."""

    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


# The runner's own records below are plain classes, not dataclasses: they never leave the
# measuring shell (the report model is), and in Python 3.11 each dataclass costs ~0.35 ms of
# start-up (its generated methods are compiled one by one).


# The largest response head the probe reads (h11's limit on an incomplete event).
_MAX_HEAD_BYTES = 64 * 1024


def _new_h11() -> h11.Connection:
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD_BYTES)


def _http10_keep_alive(
    state: h11.Connection, response: h11.Response, headers: tuple[tuple[str, str], ...]
) -> bool:
    """An HTTP/1.0 response that asked to keep the connection (``Connection: keep-alive``)
    and ended by its Content-Length, with nothing after it: reusable, as browsers reuse it."""
    if response.http_version != b"1.0" or state.their_state is h11.ERROR:
        return False
    tokens = {t.strip() for k, v in headers if k == "connection" for t in v.lower().split(",")}
    sized = any(k == "content-length" for k, _ in headers)
    return (
        "keep-alive" in tokens
        and "close" not in tokens
        and sized
        and state.trailing_data
        == (
            b"",
            False,
        )
    )


class Connection:
    """One open TCP (or TLS) connection and what opening it cost."""

    __slots__ = (
        "attempts",
        "connect_ms",
        "h11",
        "index",
        "last_end_ns",
        "open_start_ns",
        "requests",
        "resolve_ms",
        "server_address",
        "stream",
        "tls_ms",
    )

    def __init__(
        self,
        stream: Stream,
        h11: h11.Connection,
        index: int,
        *,
        resolve_ms: float | None,
        connect_ms: float | None,
        tls_ms: float | None,
        attempts: tuple[AddressAttempt, ...],
        server_address: str | None,
        open_start_ns: int,
    ) -> None:
        self.stream = stream
        self.h11 = h11
        self.index = index
        self.requests = 0
        # Phases of opening, charged to the first request on the connection.
        self.resolve_ms = resolve_ms
        self.connect_ms = connect_ms
        self.tls_ms = tls_ms
        self.attempts = attempts
        self.server_address = server_address
        self.open_start_ns = open_start_ns
        # When the last response on this connection ended (to tell an idle timeout from a
        # server that silently closes after every response).
        self.last_end_ns = 0

    def close(self) -> None:
        self.stream.close()

    def __repr__(self) -> str:
        return f"<Connection {self.index} to {self.server_address}, {self.requests} requests>"


class Exchange:
    """One request/response on a connection, with the phase boundaries drawn."""

    __slots__ = (
        "body",
        "body_bytes",
        "close_reason",
        "end_ns",
        "head_ms",
        "headers",
        "http_version",
        "keep_alive",
        "receive_ms",
        "request_headers",
        "send_ms",
        "server_timing",
        "status",
        "wait_ms",
    )

    def __init__(
        self,
        *,
        status: int,
        http_version: str,
        send_ms: float,
        wait_ms: float,
        receive_ms: float,
        head_ms: float,
        end_ns: int,
        body_bytes: int,
        keep_alive: bool,
        close_reason: str | None,
        server_timing: tuple[Metric, ...],
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        request_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.http_version = http_version
        self.send_ms = send_ms
        self.wait_ms = wait_ms
        self.receive_ms = receive_ms
        # First byte of the final response to the end of its head (status line + headers).
        self.head_ms = head_ms
        self.end_ns = end_ns
        self.body_bytes = body_bytes
        self.keep_alive = keep_alive
        self.close_reason = close_reason
        self.server_timing = server_timing
        self.headers = headers
        self.body = body  # kept only when asked for
        self.request_headers = request_headers  # as sent, credentials redacted

    def __repr__(self) -> str:
        return f"<Exchange {self.status} HTTP/{self.http_version} {self.body_bytes} bytes>"


class _RunState:
    """What a run learns as it goes, for the report's facts."""

    __slots__ = (
        "addresses",
        "connections",
        "keep_alive_refused",
        "reconnects",
        "resolve_source",
        "silent_closes",
        "warnings",
    )

    def __init__(self) -> None:
        self.addresses: tuple[str, ...] = ()
        self.resolve_source = "dns"
        self.connections = 0
        self.reconnects = 0
        self.keep_alive_refused: str | None = None
        self.warnings: list[str] = []
        # Kept-alive connections the server closed without Connection: close, found when the
        # next request on them got no answer: (requests the connection had carried, seconds
        # it had been idle).
        self.silent_closes: list[tuple[int, float]] = []


class Phase:
    """The deadline of one phase: ``timeout_s`` from its start, never past the run's end."""

    __slots__ = ("_clock", "_end_ns", "_run_bound", "name", "timeout_s")

    def __init__(self, name: str, clock: Clock, timeout_s: float, run_end_ns: int) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._clock = clock
        own_end = clock.now_ns() + int(timeout_s * 1e9)
        self._run_bound = run_end_ns < own_end
        self._end_ns = min(own_end, run_end_ns)

    def remaining_s(self) -> float:
        """Seconds left; raises TimeoutError (or RunDeadline) once there are none."""
        left = (self._end_ns - self._clock.now_ns()) / 1e9
        if left <= 0:
            self.expired()
        return left

    def expired(self) -> None:
        if self._run_bound:
            raise RunDeadline(self.name)
        raise TimeoutError(self.name)

    @property
    def run_bound(self) -> bool:
        return self._run_bound


class Client:
    """Opens connections to ``opts.target`` and times requests on them.

    Every phase (connect, TLS, send, wait, receive) is bounded as a whole by
    ``opts.timeout_s`` and every phase is cut short at ``run_end_ns`` (the run's time
    limit), so a server that drips a byte a second cannot hold a run past either. This is
    the measuring core that ``probe`` and ``diagnose`` share.
    """

    def __init__(
        self, opts: ProbeOptions, network: Network, clock: Clock, run_end_ns: int | None = None
    ) -> None:
        self.opts = opts
        self.network = network
        self.clock = clock
        self.run_end_ns = (
            run_end_ns if run_end_ns is not None else clock.now_ns() + int(opts.max_time_s * 1e9)
        )
        self.state = _RunState()
        self._tls_context: ssl.SSLContext | None = None
        self._sent_headers: tuple[tuple[str, str], ...] = ()
        self._request_event: h11.Request | None = None
        if opts.target.scheme == "https":
            self._tls_context = self._make_tls_context(("http/1.1",))

    def _make_tls_context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        # Here, not at the top: a plain-http run (the common loopback case) never pays
        # for loading ssl.
        import ssl

        opts = self.opts
        try:
            ctx = ssl.create_default_context(cafile=opts.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise LagscopeError(
                "tls", f"cannot load CA file {opts.cafile}: {exc}", ExitCode.USAGE
            ) from None
        if not opts.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(list(alpn))
        return ctx

    def offered_protocol(self, where: str) -> tuple[str | None, float | None]:
        """What the server picks when a client offers h2 and http/1.1 (ALPN), as a browser
        does, and that handshake's milliseconds: one new TLS connection, closed at once.
        (None, None) for a plain-http target."""
        if self._tls_context is None:
            return None, None
        ours = self._tls_context
        self._tls_context = self._make_tls_context(("h2", "http/1.1"))
        try:
            conn = self.open(where)
        finally:
            self._tls_context = ours
        try:
            return conn.stream.alpn_protocol(), conn.tls_ms
        finally:
            conn.stream.close()

    def phase(self, name: str) -> Phase:
        """A new phase deadline: the option's timeout from now, cut at the run's end."""
        return Phase(name, self.clock, self.opts.timeout_s, self.run_end_ns)

    # --- opening ------------------------------------------------------------------------

    def candidates(self) -> list[tuple[int, SockAddr]]:
        """The addresses of the target, in the order they are tried."""
        t = self.opts.target
        pinned = self.opts.pinned(t.host)
        if pinned is not None:
            self.state.resolve_source = "pinned"
            out: list[tuple[int, SockAddr]] = []
            for addr in pinned:
                ip = ipaddress.ip_address(addr)
                if ip.version == 6:
                    out.append((socket.AF_INET6, (addr, t.port, 0, 0)))
                else:
                    out.append((socket.AF_INET, (addr, t.port)))
            fam = self.opts.family
            return [a for a in out if fam == socket.AF_UNSPEC or a[0] == fam]
        if is_localhost_name(t.host) and t.host.lower().rstrip(".") != "localhost":
            # RFC 6761: names under .localhost are loopback and never go to a resolver (one
            # could send the query off the machine). "localhost" itself still asks the
            # system, whose hosts-file answer (::1 first on Windows) is what clients get.
            self.state.resolve_source = "localhost"
            fam = self.opts.family
            loopback: list[tuple[int, SockAddr]] = [
                (socket.AF_INET, ("127.0.0.1", t.port)),
                (socket.AF_INET6, ("::1", t.port, 0, 0)),
            ]
            return [a for a in loopback if fam == socket.AF_UNSPEC or a[0] == fam]
        try:
            return self.network.resolve(t.host, t.port, self.opts.family)
        except socket.gaierror as exc:
            raise LagscopeError(
                "resolve", f"cannot resolve {t.host!r}: {exc.strerror or exc}", ExitCode.RESOLVE
            ) from None
        except UnicodeError:
            raise LagscopeError(
                "resolve", f"invalid host name {t.host!r}", ExitCode.RESOLVE
            ) from None

    def connect_one(
        self, family: int, addr: SockAddr, phase: Phase, bound_s: float | None = None
    ) -> tuple[Stream | None, AddressAttempt]:
        """One connect attempt to one address, timed; the stream is None when it failed.
        ``bound_s`` cuts this attempt shorter than the phase (the next address waits)."""
        a0 = self.clock.now_ns()
        try:
            left = phase.remaining_s()
            stream = self.network.connect(
                family, addr, left if bound_s is None else min(left, bound_s)
            )
        except RunDeadline:
            raise
        except OSError as exc:
            if isinstance(exc, TimeoutError) and phase.run_bound and self._past(phase):
                raise RunDeadline(phase.name) from None
            return None, AddressAttempt(
                address=str(addr[0]),
                port=int(addr[1]),
                family=_family_name(family),
                outcome=_outcome(exc),
                ms=_ms(a0, self.clock.now_ns()),
                error=exc.strerror or str(exc) or type(exc).__name__,
            )
        return stream, AddressAttempt(
            address=str(addr[0]),
            port=int(addr[1]),
            family=_family_name(family),
            outcome="connected",
            ms=_ms(a0, self.clock.now_ns()),
        )

    def _connect_any(
        self, candidates: Sequence[tuple[int, SockAddr]]
    ) -> tuple[Stream | None, list[AddressAttempt]]:
        """Each address its own bounded attempt, as clients with happy eyeballs make them.

        Every address but the last gets ``ADDRESS_ATTEMPT_DELAY_S`` before the next one is
        tried, so an address that drops packets costs that delay, not the whole connect
        phase; the last gets what is left of the phase. When nothing answers in that pass,
        the addresses cut short get the rest of the phase in turn (a slow address is still
        an address). One phase deadline bounds it all.
        """
        phase = self.phase("connect")
        attempts: list[AddressAttempt] = []
        cut: list[tuple[int, SockAddr]] = []
        for i, (family, addr) in enumerate(candidates):
            last = i == len(candidates) - 1
            try:
                left = phase.remaining_s()
            except TimeoutError:
                attempts.append(_no_time(family, addr))
                continue
            bound = left if last else min(left, ADDRESS_ATTEMPT_DELAY_S)
            stream, attempt = self.connect_one(family, addr, phase, bound)
            attempts.append(attempt)
            if stream is not None:
                return stream, attempts
            if attempt.outcome == "timeout" and bound < left:
                cut.append((family, addr))
        for family, addr in cut:
            try:
                phase.remaining_s()
            except TimeoutError:
                break
            stream, attempt = self.connect_one(family, addr, phase)
            attempts.append(attempt)
            if stream is not None:
                return stream, attempts
        return None, attempts

    def _past(self, phase: Phase) -> bool:
        try:
            phase.remaining_s()
        except (TimeoutError, RunDeadline):
            return True
        return False

    def open(self, where: str) -> Connection:
        t = self.opts.target
        start = self.clock.now_ns()
        candidates = self.candidates()
        resolved = self.clock.now_ns()
        if not candidates:
            raise LagscopeError(
                "resolve",
                f"no usable address for {t.host!r}"
                + (" in the requested IP family" if self.opts.family else ""),
                ExitCode.RESOLVE,
            )
        if not self.state.addresses:
            self.state.addresses = tuple(str(a[1][0]) for a in candidates)
        stream, attempts = self._connect_any(candidates)
        connected = self.clock.now_ns()
        if stream is None:
            tried = "; ".join(f"{_show(a)} {a.outcome}" for a in attempts)
            code = (
                ExitCode.TIMEOUT
                if all(a.outcome == "timeout" for a in attempts)
                else (ExitCode.CONNECT)
            )
            raise LagscopeError("connect", f"{tried} ({where})", code)
        tls_ms: float | None = None
        if self._tls_context is not None:
            tls_phase = self.phase("tls")
            try:
                stream = stream.start_tls(self._tls_context, t.host, tls_phase.remaining_s())
            except (TimeoutError, RunDeadline) as exc:
                stream.close()
                if isinstance(exc, RunDeadline) or (tls_phase.run_bound and self._past(tls_phase)):
                    raise RunDeadline("tls") from None
                raise LagscopeError(
                    "tls",
                    f"handshake with {t.host} timed out after {self.opts.timeout_s:g} s ({where})",
                    ExitCode.TIMEOUT,
                ) from None
            except OSError as exc:  # ssl.SSLError included: it is an OSError
                stream.close()
                reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or exc
                raise LagscopeError(
                    "tls", f"handshake with {t.host} failed: {reason} ({where})", ExitCode.TLS
                ) from None
            tls_ms = _ms(connected, self.clock.now_ns())
        index = self.state.connections
        self.state.connections += 1
        return Connection(
            stream=stream,
            h11=_new_h11(),
            index=index,
            resolve_ms=None if self.state.resolve_source == "pinned" else _ms(start, resolved),
            connect_ms=_ms(resolved, connected),
            tls_ms=tls_ms,
            attempts=tuple(attempts),
            server_address=attempts[-1].address,
            open_start_ns=start,
        )

    # --- one request --------------------------------------------------------------------

    def _request(self) -> h11.Request:
        # Built once per run: every request of a run is the same, and h11 validates the
        # headers each time a Request is made.
        if self._request_event is None:
            o = self.opts
            headers = [
                ("Host", o.target.host_header),
                ("User-Agent", f"lagscope/{__version__}"),
                ("Accept", "*/*"),
            ]
            given = {name.lower() for name, _ in o.headers}
            headers = [h for h in headers if h[0].lower() not in given] + list(o.headers)
            if o.body and "content-length" not in given:
                headers.append(("Content-Length", str(len(o.body))))
            self._request_event = h11.Request(
                method=o.method, target=o.target.target, headers=headers
            )
            self._sent_headers = redact.headers(headers)
        return self._request_event

    def _request_bytes(self, conn: Connection) -> bytes:
        o = self.opts
        try:
            out = conn.h11.send(self._request())
            if o.body:
                out = (out or b"") + (conn.h11.send(h11.Data(data=o.body)) or b"")
            return (out or b"") + (conn.h11.send(_END_OF_MESSAGE) or b"")
        except (h11.LocalProtocolError, UnicodeError) as exc:
            # Options are validated up front; this is the backstop for what h11 refuses.
            raise LagscopeError(
                "options", f"cannot send this request: {exc}", ExitCode.USAGE
            ) from None

    def _io_error(
        self, exc: OSError, phase: Phase, where: str, *, stale_ok: bool, lost: str
    ) -> Exception:
        """What the stream raised in one phase, as the run's error (raise it ``from None``).

        A timeout becomes exit 5 naming the phase (or the run's end, when the run's limit
        was the binding one); a lost connection is a stale keep-alive connection when
        ``stale_ok`` (the caller reconnects), else exit 7. A plain ``except`` at each call,
        not a context manager: one of those per phase was ~0.5 ms of a 20 + 50 run.
        """
        if isinstance(exc, TimeoutError):
            if phase.run_bound and self._past(phase):
                return RunDeadline(phase.name)
            return LagscopeError(
                phase.name,
                f"{_TIMEOUT_TEXT[phase.name]} within {phase.timeout_s:g} s ({where})",
                ExitCode.TIMEOUT,
            )
        if stale_ok:
            return _StaleConnection()
        return LagscopeError(phase.name, f"{lost}: {exc} ({where})", ExitCode.PROTOCOL)

    def exchange_reusing(
        self, conn: Connection, where: str, *, keep_body: bool = False
    ) -> tuple[Connection, Exchange, bool]:
        """:meth:`exchange` on a connection that may have carried requests before: (the
        connection used, the exchange, whether it had to reconnect).

        A server may close a kept-alive connection without saying so (no ``Connection:
        close``: an idle timeout, a request limit); the next request on it then finds it
        closed before any response. It is retried once on a new connection, as browsers
        do, and the close is counted in ``state.silent_closes`` so that the run can name
        it. Only a reused connection is retried: on a new one the failure is the server's.
        """
        try:
            return conn, self.exchange(conn, where, keep_body=keep_body), False
        except _StaleConnection:
            idle_s = max(0.0, (self.clock.now_ns() - conn.last_end_ns) / 1e9)
            self.state.silent_closes.append((conn.requests, round(idle_s, 3)))
            conn.close()
        fresh = self.open(where)
        return fresh, self.exchange(fresh, where, keep_body=keep_body), True

    def exchange(
        self, conn: Connection, where: str, *, keep_body: bool = False, hold_s: float = 0.0
    ) -> Exchange:
        """Send the request on ``conn`` and read the whole response. ``hold_s``: send the
        request's first byte, wait that long, then the rest (the send and wait phases are
        timed from there), so what the path pays for a connection's first bytes is over
        before the request is complete."""
        o = self.opts
        reused = conn.requests > 0
        data = self._request_bytes(conn)
        send = self.phase("send")
        if hold_s > 0:
            try:
                conn.stream.send_all(data[:1], send.remaining_s())
            except OSError as exc:
                raise self._io_error(
                    exc, send, where, stale_ok=reused, lost="connection lost while sending"
                ) from None
            self.clock.sleep(hold_s)
            data = data[1:]
            send = self.phase("send")
        t_send = self.clock.now_ns()
        try:
            conn.stream.send_all(data, send.remaining_s())
        except OSError as exc:
            raise self._io_error(
                exc, send, where, stale_ok=reused, lost="connection lost while sending"
            ) from None
        t_sent = self.clock.now_ns()
        # wait: until the first byte of the final response (interim 1xx responses are the
        # server still working, so their time is waiting too).
        wait = self.phase("wait")
        try:
            first = conn.stream.recv(_RECV_BYTES, wait.remaining_s())
        except OSError as exc:
            raise self._io_error(
                exc, wait, where, stale_ok=reused, lost="connection lost before any response"
            ) from None
        t_chunk = self.clock.now_ns()
        if not first:
            if reused:
                raise _StaleConnection
            raise LagscopeError(
                "wait",
                f"server closed the connection without replying ({where})",
                ExitCode.PROTOCOL,
            )
        prefix = first[:5]
        if not b"HTTP/".startswith(prefix[:5]) or (len(first) >= 5 and prefix != b"HTTP/"):
            if first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
                # A TLS record (alert or handshake) in answer to plain HTTP: the port speaks
                # TLS (serve --https, granian), which cannot answer http:// itself.
                t = self.opts.target
                host = f"[{t.host}]" if ":" in t.host else t.host
                https_url = redact.url(f"https://{host}:{t.port}{t.target}")
                raise LagscopeError(
                    "wait",
                    f"the server answered with TLS: this port speaks HTTPS; use {https_url} "
                    f"({where})",
                    ExitCode.PROTOCOL,
                )
            raise LagscopeError(
                "wait", f"reply is not HTTP: {first[:24]!r} ({where})", ExitCode.PROTOCOL
            )
        # The end of the message is when its last bytes arrived, not when h11 finished
        # parsing them: the probe's own parsing cost stays out of the measurement.
        t_first: int | None = t_chunk
        t_head = t_chunk
        t_last = t_chunk
        response: h11.Response | None = None
        body = 0
        kept = bytearray()
        chunk = first
        phase = wait
        while True:
            try:
                conn.h11.receive_data(chunk)
                while True:
                    event = conn.h11.next_event()
                    if event is h11.NEED_DATA:
                        break
                    if event is h11.PAUSED:
                        raise LagscopeError(
                            "receive",
                            f"the server switched protocols; nothing left to time ({where})",
                            ExitCode.PROTOCOL,
                        )
                    if isinstance(event, h11.InformationalResponse):
                        # The final response starts with the next bytes to arrive.
                        t_first = None
                    elif isinstance(event, h11.Response):
                        response = event
                        if t_first is None:
                            t_first = t_chunk
                        t_head = t_chunk
                        phase = self.phase("receive")
                    elif isinstance(event, h11.Data):
                        body += len(event.data)
                        if keep_body:
                            kept += event.data
                        if body > o.max_body_bytes:
                            raise BodyCapError(o.max_body_bytes, where)
                    elif isinstance(event, h11.EndOfMessage):
                        assert t_first is not None  # a Response came first
                        return self._finish(
                            conn,
                            response,
                            t_send,
                            t_sent,
                            t_first,
                            t_head,
                            t_last,
                            body,
                            bytes(kept),
                        )
                    elif isinstance(event, h11.ConnectionClosed):
                        raise h11.RemoteProtocolError("connection closed")
            except h11.RemoteProtocolError as exc:
                if not chunk:
                    expected = _expected_length(response)
                    got = (
                        f"after {body} of {expected} body bytes"
                        if expected is not None
                        else (f"after {body} body bytes" if response is not None else "mid-headers")
                    )
                    raise LagscopeError(
                        "receive",
                        f"server closed the connection {got} ({where})",
                        ExitCode.PROTOCOL,
                    ) from None
                raise LagscopeError(
                    "receive", f"invalid HTTP response: {exc} ({where})", ExitCode.PROTOCOL
                ) from None
            try:
                chunk = conn.stream.recv(_RECV_BYTES, phase.remaining_s())
            except OSError as exc:
                raise self._io_error(
                    exc, phase, where, stale_ok=False, lost="connection lost mid-response"
                ) from None
            t_chunk = self.clock.now_ns()
            t_last = t_chunk
            if t_first is None:
                t_first = t_chunk

    def _finish(
        self,
        conn: Connection,
        response: h11.Response | None,
        t_send: int,
        t_sent: int,
        t_first: int,
        t_head: int,
        end: int,
        body: int,
        kept: bytes,
    ) -> Exchange:
        assert response is not None  # h11 emits Response before EndOfMessage
        headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers
        )
        timing = parse_headers(v for k, v in headers if k == "server-timing")
        keep = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
        reason: str | None = None
        if keep:
            conn.h11.start_next_cycle()
        elif _http10_keep_alive(conn.h11, response, headers):
            # h11 closes after any HTTP/1.0 response; browsers, urllib3 and http.client keep
            # one that says keep-alive and has a length, so the probe does as they do.
            conn.h11 = _new_h11()
            keep = True
        else:
            connection = ",".join(v for k, v in headers if k == "connection").lower()
            if "close" in connection:
                reason = "it sent Connection: close"
            elif response.http_version == b"1.0":
                reason = "it answered with HTTP/1.0 without keep-alive"
            else:
                reason = "its response body was delimited by closing the connection"
        conn.requests += 1
        conn.last_end_ns = end
        return Exchange(
            status=response.status_code,
            http_version=response.http_version.decode("ascii", "replace"),
            send_ms=_ms(t_send, t_sent),
            wait_ms=_ms(t_sent, t_first),
            receive_ms=_ms(t_first, end),
            head_ms=_ms(t_first, max(t_first, t_head)),
            end_ns=end,
            body_bytes=body,
            keep_alive=keep,
            close_reason=reason,
            server_timing=timing,
            headers=headers,
            body=kept,
            request_headers=self._sent_headers,
        )


_TIMEOUT_TEXT = {
    "send": "could not send the request",
    "wait": "no response",
    "receive": "the response stalled: not complete",
}


def _expected_length(response: h11.Response | None) -> int | None:
    if response is None:
        return None
    for k, v in response.headers:
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


def _no_time(family: int, addr: SockAddr) -> AddressAttempt:
    return AddressAttempt(
        address=str(addr[0]),
        port=int(addr[1]),
        family=_family_name(family),
        outcome="timeout",
        ms=0.0,
        error="no time left in the connect phase",
    )


def _show(a: AddressAttempt) -> str:
    host = f"[{a.address}]" if a.family == "ipv6" else a.address
    return f"{host}:{a.port}"


def make_record(
    series: str,
    index: int,
    conn: Connection,
    first_on_conn: bool,
    ex: Exchange,
    start_ns: int,
    run_start_ns: int,
) -> RequestRecord:
    opening = (
        (conn.resolve_ms or 0.0) + (conn.connect_ms or 0.0) + (conn.tls_ms or 0.0)
        if first_on_conn
        else 0.0
    )
    exchange_ms = ex.send_ms + ex.wait_ms + ex.receive_ms
    timing, dropped = believable(ex.server_timing, exchange_ms)
    return RequestRecord(
        series=series,
        index=index,
        connection=conn.index,
        reused=not first_on_conn,
        status=ex.status,
        http_version=ex.http_version,
        start_ms=_ms(run_start_ns, start_ns),
        resolve_ms=conn.resolve_ms if first_on_conn else None,
        connect_ms=conn.connect_ms if first_on_conn else None,
        tls_ms=conn.tls_ms if first_on_conn else None,
        send_ms=ex.send_ms,
        wait_ms=ex.wait_ms,
        receive_ms=ex.receive_ms,
        # The sum of the phases: the probe's own bookkeeping between them is not the
        # server's latency and stays out.
        total_ms=opening + exchange_ms,
        body_bytes=ex.body_bytes,
        keep_alive=ex.keep_alive,
        attempts=conn.attempts if first_on_conn else (),
        server_timing=timing,
        server_address=conn.server_address,
        head_ms=ex.head_ms,
        response_headers=redact.headers(ex.headers),
        request_headers=ex.request_headers,
        dropped_server_timing=dropped,
    )


def _plan(cold: int, warm: int) -> list[tuple[str, int]]:
    """The order of requests: the warm connection's first, then cold and warm alternating."""
    plan: list[tuple[str, int]] = []
    if warm:
        plan.append(("warm_first", 0))
    for i in range(max(cold, warm)):
        if i < cold:
            plan.append(("cold", i))
        if i < warm:
            plan.append(("warm", i))
    return plan


def run_probe(
    opts: ProbeOptions,
    network: Network | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> ProbeReport:
    """Measure ``opts.target`` and return the report. Raises LagscopeError on failure."""
    network = network or SystemNetwork()
    clock = clock or SystemClock()
    run_start = clock.now_ns()
    deadline = run_start + int(opts.max_time_s * 1e9)
    prober = Client(opts, network, clock, run_end_ns=deadline)
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    rate = opts.rate_per_s
    if rate is None and not is_loopback_host(opts.target.host, opts.pinned(opts.target.host)):
        from lagscope.probe.options import REMOTE_RATE_PER_S

        rate = REMOTE_RATE_PER_S
    interval_ns = int(1e9 / rate) if rate else 0
    plan = _plan(opts.cold, opts.warm)
    totals = {"cold": opts.cold, "warm": opts.warm, "warm_first": 1 if opts.warm else 0}
    done = {"cold": 0, "warm": 0, "warm_first": 0}
    records: list[RequestRecord] = []
    warm_conn: Connection | None = None
    truncated = False
    next_slot = run_start
    n = 0
    try:
        for n, (series, index) in enumerate(plan):  # noqa: B007 (n is read after the loop)
            now = clock.now_ns()
            if interval_ns and now < next_slot:
                clock.sleep(min(next_slot - now, max(0, deadline - now)) / 1e9)
            if clock.now_ns() >= deadline:
                raise RunDeadline("between requests")
            next_slot = max(clock.now_ns(), next_slot) + interval_ns
            label = (
                "the warm connection's first request"
                if series == "warm_first"
                else f"{series} request {index + 1} of {totals[series]}"
            )
            if series == "cold":
                start = clock.now_ns()
                conn = prober.open(label)
                try:
                    ex = prober.exchange(conn, label)
                finally:
                    conn.close()
                records.append(make_record(series, index, conn, True, ex, start, run_start))
            else:
                start = clock.now_ns()
                first_on_conn = warm_conn is None
                if warm_conn is None:
                    warm_conn = prober.open(label)
                # A warm request that opens a connection (the server closed the last one
                # after several responses) is a new connection's first, which stays out of
                # the warm statistics.
                reopened = (
                    first_on_conn and series == "warm" and prober.state.keep_alive_refused is None
                )
                record_series = "warm_first" if reopened else series
                warm_conn, ex, reconnected = prober.exchange_reusing(warm_conn, label)
                if reconnected:
                    # The server had closed the connection we meant to reuse: counted, and
                    # the request ran on a new connection.
                    prober.state.reconnects += 1
                    carried, idle_s = prober.state.silent_closes[-1]
                    if (
                        carried <= 1
                        and idle_s < SILENT_CLOSE_IDLE_S
                        and prober.state.keep_alive_refused is None
                    ):
                        # Closed right after its only response: keep-alive refused. After
                        # several responses it is a request limit or an idle timeout.
                        prober.state.keep_alive_refused = (
                            "it closed the connection right after the response without "
                            "sending Connection: close"
                        )
                    if prober.state.keep_alive_refused is None:
                        # This request is a new connection's first, which stays out of the
                        # warm statistics.
                        record_series = "warm_first"
                    first_on_conn = True
                records.append(
                    make_record(
                        record_series, index, warm_conn, first_on_conn, ex, start, run_start
                    )
                )
                if not ex.keep_alive:
                    # Connection: close after several responses is a request limit, not
                    # keep-alive refused: the next request opens a new connection.
                    if warm_conn.requests <= 1 and prober.state.keep_alive_refused is None:
                        prober.state.keep_alive_refused = ex.close_reason
                    warm_conn.close()
                    warm_conn = None
            done[series] += 1
            if progress is not None:
                progress(series, sum(done.values()), len(plan))
    except RunDeadline as stop:
        if not records:
            raise LagscopeError(
                stop.phase if stop.phase != "between requests" else "run",
                f"--max-time {opts.max_time_s:g} s ran out before any request completed",
                ExitCode.TIMEOUT,
            ) from None
        truncated = True
        prober.state.warnings.append(
            f"stopped at --max-time {opts.max_time_s:g} s after {len(records)} of {len(plan)} "
            "requests"
        )
    finally:
        if warm_conn is not None:
            warm_conn.close()
    state = prober.state
    if state.keep_alive_refused is not None:
        state.warnings.append(
            f"the server refused keep-alive ({state.keep_alive_refused}); the warm series was "
            "measured on new connections"
        )
    statuses = sorted({r.status for r in records if r.status >= 400})
    if statuses:
        state.warnings.append(f"the server answered with error statuses: {statuses}")
    dropped = dropped_note(records)
    if dropped is not None:
        state.warnings.append(dropped)
    facts = RunFacts(
        tool_version=__version__,
        url=opts.target.url,
        method=opts.method,
        started_at=started_at,
        duration_ms=_ms(run_start, clock.now_ns()),
        host=opts.target.host,
        resolve_source=state.resolve_source,
        addresses=state.addresses,
        keep_alive=KeepAlive(
            supported=state.keep_alive_refused is None,
            reason=state.keep_alive_refused,
            reconnects=state.reconnects,
        ),
        truncated=truncated,
        warnings=tuple(state.warnings),
        options=(
            ("cold", opts.cold),
            ("warm", opts.warm),
            ("timeout_s", opts.timeout_s),
            ("max_time_s", opts.max_time_s),
            ("max_body_bytes", opts.max_body_bytes),
            ("family", _FAMILY_NAMES.get(int(opts.family), "any")),
            ("verify_tls", opts.verify_tls),
            ("rate_per_s", rate),
            # Header names only: values may carry credentials.
            ("header_names", [name for name, _ in opts.headers]),
            ("body_bytes", len(opts.body)),
            ("resolve", {host: list(addrs) for host, addrs in opts.resolve}),
        ),
    )
    return build_report(records, facts)

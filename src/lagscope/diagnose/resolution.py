"""The rungs before any request: the name and its addresses, and (https) the protocol the
server offers a browser.

:func:`resolution` times the lookup, connects to each address the name resolves to in the
order a client tries them, times a whole connect as a sequential client makes it, and asks
the other loopback address whether anything listens there. When the first address fails
or the lookup is slow, the rest of the run connects where the host answers (as a client
with happy eyeballs would): those prices are this rung's findings. :func:`protocol` offers
h2 and http/1.1 over TLS (ALPN).
"""

from __future__ import annotations

import re
import socket
import statistics
from collections.abc import Sequence
from dataclasses import replace

from lagscope.diagnose.context import LadderRun
from lagscope.diagnose.evidence import AddressProbe, Resolution, figure, summary_of
from lagscope.diagnose.model import Figure
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.net import SockAddr
from lagscope.probe.runner import Client

__all__ = ["is_name", "protocol", "resolution"]

# A connect that hangs (a dropped SYN) says what it needs to in a few seconds; a Windows
# refused-loopback connect takes ~2 s.
_RESOLUTION_TIMEOUT_S = 3.0
# The other loopback address is only asked whether it answers at all.
_OTHER_LOOPBACK_TIMEOUT_S = 1.0


def is_name(host: str) -> bool:
    """Not an IP literal."""
    return not (re.fullmatch(r"[0-9.]+", host) or ":" in host)


def resolution(run: LadderRun) -> Resolution:
    t0 = run.start("resolution")
    samples = run.plan.resolve_samples
    client = run.client(
        replace(run.probe, timeout_s=min(run.probe.timeout_s, _RESOLUTION_TIMEOUT_S))
    )
    host = run.probe.target.host
    resolve_ms: list[float] = []
    candidates = []
    for _ in range(samples):
        r0 = run.clock.now_ns()
        candidates = client.candidates()
        resolve_ms.append((run.clock.now_ns() - r0) / 1e6)
    if not candidates:
        raise LagscopeError("resolve", f"no usable address for {host!r}", ExitCode.RESOLVE)
    probes: list[AddressProbe] = []
    for family, addr in candidates:
        outcomes: list[str] = []
        times: list[float] = []
        for _ in range(samples):
            stream, attempt = client.connect_one(family, addr, client.phase("connect"))
            if stream is not None:
                stream.close()
            outcomes.append(attempt.outcome)
            times.append(attempt.ms)
            if attempt.outcome == "timeout":
                break  # one timeout says enough; do not spend the run on it
        probes.append(
            AddressProbe(
                str(addr[0]),
                "ipv6" if ":" in str(addr[0]) else "ipv4",
                tuple(outcomes),
                tuple(times),
            )
        )
    if not any(p.connects for p in probes):
        tried = "; ".join(f"{p.address}:{run.probe.target.port} {p.outcomes[0]}" for p in probes)
        code = (
            ExitCode.TIMEOUT
            if all(p.outcomes[0] == "timeout" for p in probes)
            else ExitCode.CONNECT
        )
        raise LagscopeError("connect", tried, code)
    hostname_ms: list[float] = []
    hangs = any("timeout" in p.outcomes for p in probes)
    for _ in range(1 if hangs else samples):
        c0 = run.clock.now_ns()
        conn = client.open("resolution: a connect as a client makes it")
        hostname_ms.append((run.clock.now_ns() - c0) / 1e6)
        conn.close()
    unlistened = _other_loopback(run, client, candidates)
    res = Resolution(
        host=host,
        is_name=is_name(host),
        source=client.state.resolve_source,
        resolve_ms=tuple(resolve_ms),
        addresses=tuple(probes),
        hostname_connect_ms=tuple(hostname_ms),
        unlistened=unlistened,
    )
    figures = [Figure("addresses", ", ".join(p.address for p in probes))]
    for p in probes:
        figures.append(
            figure(f"connect_{p.address}_ms", summary_of(p.connect_ms))
            if p.connects
            else Figure(f"connect_{p.address}", "/".join(sorted(set(p.outcomes))))
        )
    figures.append(figure("hostname_connect_ms", summary_of(hostname_ms)))
    figures.append(figure("resolve_ms", summary_of(resolve_ms)))
    notes = [f"{a} does not answer (nothing listens there)" for a in unlistened]
    first_ok = next(p for p in probes if p.connects)
    slow_lookup = (
        res.source != "pinned" and statistics.median(resolve_ms) >= run.thresholds.slow_resolve_ms
    )
    if probes[0] is not first_ok or slow_lookup:
        # The rest of the ladder connects where the host answers, as a client with happy
        # eyeballs would, and without looking the name up again when that is slow: the
        # fallback's and the lookup's prices are this rung's findings, and the cold budget
        # takes the lookup from here.
        pins = tuple((h, a) for h, a in run.probe.resolve if h != host.lower())
        run.probe = replace(run.probe, resolve=(*pins, (host.lower(), (first_ok.address,))))
        notes.append(f"later rungs connect to {first_ok.address} directly")
    run.done("resolution", "Name resolution", t0, figures, notes)
    return res


def _other_loopback(
    run: LadderRun, client: Client, candidates: Sequence[tuple[int, SockAddr]]
) -> tuple[str, ...]:
    """For names that resolve to loopback: the loopback address that refuses."""
    if not is_name(run.probe.target.host):
        return ()
    seen = {str(addr[0]) for _, addr in candidates}
    if not seen <= {"127.0.0.1", "::1"}:
        return ()
    port = run.probe.target.port
    others: list[tuple[int, SockAddr]] = [
        (socket.AF_INET6, ("::1", port, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", port)),
    ]
    out: list[str] = []
    for family, addr in others:
        if str(addr[0]) in seen:
            continue
        try:
            stream, attempt = client.connect_one(
                family, addr, client.phase("connect"), _OTHER_LOOPBACK_TIMEOUT_S
            )
        except (TimeoutError, OSError):
            continue
        if stream is not None:
            stream.close()
        elif attempt.outcome in ("refused", "timeout"):
            out.append(str(addr[0]))
    return tuple(out)


def protocol(run: LadderRun) -> str:
    """https: the protocol the server offers a browser (ALPN over h2 and http/1.1)."""
    t0 = run.start("protocol")
    picked, tls_ms = run.client().offered_protocol("protocol: a TLS handshake offering h2")
    alpn = picked or ""
    figures = [Figure("alpn", alpn or "none")]
    if tls_ms is not None:
        figures.append(Figure("tls_handshake_ms", round(tls_ms, 3), "ms"))
    if alpn == "h2":
        note = (
            "the server offers HTTP/2: a browser sends every request of a page down one "
            "connection per origin"
        )
    else:
        note = (
            "the server offers HTTP/1.1 only: a browser opens up to 6 connections per "
            "origin, each paying any per-connection cost; lagscope serve --https or "
            "nginx-config --https offer HTTP/2 (docs/https.md)"
        )
    run.done("protocol", "Protocol offered to browsers (ALPN)", t0, figures, [note])
    return alpn

"""What every rung of one diagnose run shares: :class:`LadderRun`.

It holds the run's options, the injected network and clock, the one run deadline, the
URL being measured now (resolution may pin its address, the first request may move it
along redirects), and what the run has gathered so far: every request with run-wide
connection ids, the rungs as they ran, the warnings, the kept-alive connections the
server closed silently. Each rung module (:mod:`lagscope.diagnose.ladder` names them in
order) reads and adds to it; nothing here measures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from lagscope.addresses import format_host_port
from lagscope.diagnose.model import Figure, Rung, RungStatus
from lagscope.diagnose.options import DiagnoseOptions
from lagscope.probe.model import RequestRecord
from lagscope.probe.net import Clock, Network
from lagscope.probe.options import ProbeOptions, is_loopback_host
from lagscope.probe.runner import Client

__all__ = ["LadderRun", "Progress", "shown"]

# (rung name, message): "start" / "done …" lines for the terminal.
Progress = Callable[[str, str], None]


class LadderRun:
    def __init__(
        self,
        opts: DiagnoseOptions,
        network: Network,
        clock: Clock,
        progress: Progress | None,
    ) -> None:
        self.opts = opts
        self.plan = opts.plan
        self.thresholds = opts.thresholds
        # The URL measured now: resolution may pin its address, redirects move it.
        self.probe = opts.probe
        self.network = network
        self.clock = clock
        self.progress = progress
        self.run_start = clock.now_ns()
        self.run_end = self.run_start + int(opts.probe.max_time_s * 1e9)
        self.records: list[RequestRecord] = []
        self.rungs: list[Rung] = []
        self.warnings: list[str] = []
        self.truncated = False
        self._connections = 0
        # Why the first request stopped on a redirect it did not follow (evidence.Hygiene).
        self.redirect_stop: str | None = None
        # Kept-alive connections the server closed silently, from every rung's clients:
        # (requests carried, seconds idle); the request was retried on a new connection.
        self.silent_closes: list[tuple[int, float]] = []
        self.loopback = is_loopback_host(
            self.probe.target.host, self.probe.pinned(self.probe.target.host)
        )

    def load_refused(self) -> str | None:
        """Why the load rungs (the burst, the concurrency ladder) may not run, or None: they
        only ever hit the host and port the user gave, and only on loopback, unless
        --allow-load. A redirect elsewhere, even to another loopback port, is followed for
        single requests but never loaded."""
        if self.opts.allow_load:
            return None
        if not self.loopback:
            return "the host is not loopback; use --allow-load"
        given, now = self.opts.probe.target, self.probe.target
        if (now.host.lower(), now.port) != (given.host.lower(), given.port):
            where = format_host_port(now.host, now.port)
            return f"the URL redirects to {where}, not the address given; use --allow-load"
        return None

    def say(self, rung: str, message: str) -> None:
        if self.progress is not None:
            self.progress(rung, message)

    def start(self, rung: str) -> int:
        """Says the rung starts; its start time, for :meth:`done`."""
        t0 = self.clock.now_ns()
        self.say(rung, "start")
        return t0

    def left_s(self) -> float:
        return (self.run_end - self.clock.now_ns()) / 1e9

    def client(self, probe: ProbeOptions | None = None) -> Client:
        return Client(probe or self.probe, self.network, self.clock, run_end_ns=self.run_end)

    def keep(
        self, records: Sequence[RequestRecord], series: str | None = None
    ) -> list[RequestRecord]:
        """Adds a rung's records with run-wide connection ids; returns them as kept."""
        base = self._connections
        top = base
        kept: list[RequestRecord] = []
        for r in records:
            conn = base + r.connection
            top = max(top, conn + 1)
            kept.append(replace(r, connection=conn, series=series or r.series))
        self.records += kept
        self._connections = top
        return kept

    def done(
        self,
        name: str,
        title: str,
        t0: int,
        figures: Sequence[Figure] = (),
        notes: Sequence[str] = (),
        status: RungStatus = "ran",
    ) -> None:
        ms = (self.clock.now_ns() - t0) / 1e6
        self.rungs.append(Rung(name, title, status, round(ms, 3), tuple(figures), tuple(notes)))
        self.say(name, f"{status} ({ms / 1000:.1f} s)")

    def skip(self, name: str, title: str, why: str) -> None:
        self.rungs.append(Rung(name, title, "skipped", 0.0, (), (why,)))
        self.say(name, f"skipped: {why}")


def shown(text: str, limit: int = 200) -> str:
    """A server's string inside a warning: quoted, control characters escaped, cut."""
    quoted = ascii(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"

"""diagnose and probe against hostile servers on loopback, one test per failure class: any
Server-Timing value that cannot be true, any malformed redirect, any keep-alive connection a
server drops without saying so. Each run must end with figures that are finite and
consistent (no exit 70, no negative "unexplained"), and say what it left out."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import time
from typing import Any

import pytest

from lagscope.diagnose import run
from lagscope.diagnose.model import DiagnoseReport
from lagscope.diagnose.model import to_dict as diagnose_to_dict
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.model import to_dict as probe_to_dict
from lagscope.probe.net import SockAddr, SystemNetwork
from lagscope.probe.options import ProbeOptions, parse_url
from lagscope.probe.render import load_json as load_probe_json
from lagscope.probe.runner import run_probe
from support import badservers


def _numbers(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [n for v in node.values() for n in _numbers(v)]
    if isinstance(node, list):
        return [n for v in node for n in _numbers(v)]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [float(node)]
    return []


# Durations no response can carry: overflowing, negative, or longer than a loopback
# exchange of well under a second.
IMPOSSIBLE_DURS = [b"1e308", b"1.7976931348623157e308", b"-5", b"-1e308", b"-0.001", b"86400000"]


def _quick(url: str) -> DiagnoseReport:
    return run(url, quick=True, timeout_s=5.0, max_time_s=30.0)


@pytest.mark.parametrize("dur", IMPOSSIBLE_DURS)
def test_impossible_server_timing_is_dropped_with_a_note(dur: bytes) -> None:
    header = b"app;dur=" + dur + b", db;dur=" + dur + b", thread;desc=w1, view;dur=0"
    with badservers.serve(badservers.answers([(b"Server-Timing", header)])) as port:
        url = f"http://127.0.0.1:{port}/"
        report = _quick(url)
        probe = run_probe(ProbeOptions(target=parse_url(url), cold=3, warm=3))
    for warnings, records in (
        (report.warnings, report.requests),
        (probe.warnings, [r for s in probe.series for r in s.requests]),
    ):
        assert any("dropped as impossible" in w for w in warnings), warnings
        for r in records:
            names = [m.name for m in r.server_timing]
            assert "app" not in names and "db" not in names  # gone from every figure
            assert {"thread", "view"} <= set(names)  # the believable ones stay
            assert {m.name for m in r.dropped_server_timing} == {"app", "db"}
    for b in report.budgets:
        assert all(0.0 <= i.ms <= b.total_ms + 1e-9 for i in b.items if i.within is None), b
    for data in (diagnose_to_dict(report), probe_to_dict(probe)):
        # The saved form holds what was dropped and reloads (every number in range).
        assert all(math.isfinite(n) for n in _numbers(data))
    assert load_probe_json(json.dumps(probe_to_dict(probe))).warnings == probe.warnings


def test_server_timing_longer_than_the_request_never_makes_unexplained_negative() -> None:
    """An app figure just inside the exchange, and one over it: the budget's top-level items
    are each within the total and add up to it."""
    header = b"app;dur=0.0001, queue;dur=0.0001, total;dur=50"
    with badservers.serve(badservers.answers([(b"Server-Timing", header)])) as port:
        report = _quick(f"http://127.0.0.1:{port}/")
    assert report.budgets
    for b in report.budgets:
        top = [i for i in b.items if i.within is None]
        assert all(i.ms >= 0 for i in top), top
        assert math.isclose(sum(i.ms for i in top), b.total_ms, abs_tol=1e-6) or b.kind == "cold"


# Locations a server may send that no run should die on: malformed, other schemes, spaces,
# control characters (C0 and C1), ports out of range, a scheme with no host.
BAD_LOCATIONS = [
    b"http://[::1/oops",
    b"file:///etc/passwd",
    b"gopher://127.0.0.1:70/",
    b"/a b",
    b"http://",
    b"http://127.0.0.1:99999/",
    b"javascript:alert(1)",
    b"/p\x1b]0;TITLE\x07x",
    b"//[bad",
    b"/\x9b31mC1",
]


@pytest.mark.parametrize("location", BAD_LOCATIONS, ids=[repr(x) for x in BAD_LOCATIONS])
def test_a_malformed_redirect_is_named_and_the_redirect_itself_diagnosed(location: bytes) -> None:
    """The user's URL was fine: whatever the server's Location, the run ends (no exit 2 "bad
    input", no exit 70), keeps what it measured and names the redirect."""
    redirect = badservers.answers([(b"Location", location)], status=b"302 Found", body=b"")
    with badservers.serve(redirect) as port:
        url = f"http://127.0.0.1:{port}/"
        report = _quick(url)
    assert report.final_url == url  # the redirect itself was diagnosed
    assert report.requests and report.budgets
    finding = report.finding("redirects")
    assert finding is not None and finding.severity in ("warning", "critical")
    assert "Link to the final URL" not in " ".join(finding.fix)
    warning = next(w for w in report.warnings if "redirect" in w)
    assert "\x1b" not in warning and "\x07" not in warning


def test_a_redirect_loop_says_so_and_gives_no_same_url_advice() -> None:
    loop = badservers.answers([(b"Location", b"/")], status=b"301 Moved Permanently", body=b"")
    with badservers.serve(loop) as port:
        report = _quick(f"http://127.0.0.1:{port}/")
    finding = report.finding("redirects")
    assert finding is not None and "loop" in finding.title
    assert "too many redirects" in " ".join(finding.fix)
    assert any("redirect loop" in w for w in report.warnings)


class _RecordingNetwork(SystemNetwork):
    """The real network, recording every name it is asked to resolve."""

    def __init__(self) -> None:
        self.resolved: list[str] = []

    def resolve(self, host: str, port: int, family: int) -> list[tuple[int, SockAddr]]:
        self.resolved.append(host)
        return super().resolve(host, port, family)


@pytest.mark.parametrize("name", ["app.localhost", "Deep.Sub.LOCALHOST", "x.localhost."])
def test_localhost_names_are_loopback_without_any_resolver(name: str) -> None:
    """RFC 6761: a redirect to a name under .localhost is followed to loopback and never
    asked of the system resolver (whose DNS query could leave the machine); the load rungs
    stay on the address the user gave."""
    with badservers.serve(badservers.answers([])) as target:
        hop = badservers.answers(
            [(b"Location", f"http://{name}:{target}/".encode())], status=b"302 Found"
        )
        with badservers.serve(hop) as port:
            network = _RecordingNetwork()
            report = run(f"http://127.0.0.1:{port}/", network=network, quick=True, max_time_s=30.0)
    assert not [h for h in network.resolved if "localhost" in h.lower()], network.resolved
    assert report.final_url.lower().startswith(f"http://{name.lower()}:{target}")
    assert report.finding("redirects") is None or "does not answer" not in (
        report.finding("redirects").title  # type: ignore[union-attr]
    )
    queueing = next(r for r in report.rungs if r.name == "queueing")
    assert queueing.status == "skipped" and "not the address given" in queueing.notes[0]
    assert any("no concurrent burst" in w for w in report.warnings)
    loaded = [r.series for r in report.requests if re.fullmatch(r"burst|c\d+", r.series)]
    assert not loaded


def test_allow_load_lets_the_load_rungs_follow_a_loopback_redirect() -> None:
    with badservers.serve(badservers.answers([])) as target:
        hop = badservers.answers(
            [(b"Location", f"http://127.0.0.1:{target}/".encode())], status=b"302 Found"
        )
        with badservers.serve(hop) as port:
            report = run(f"http://127.0.0.1:{port}/", quick=True, max_time_s=30.0, allow_load=True)
    queueing = next(r for r in report.rungs if r.name == "queueing")
    assert queueing.status == "ran"


def test_a_redirect_to_a_hop_that_does_not_answer_diagnoses_the_redirect() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        dead = closed.getsockname()[1]
        hop = badservers.answers(
            [(b"Location", f"http://127.0.0.1:{dead}/".encode())], status=b"302 Found"
        )
        with badservers.serve(hop) as port:
            url = f"http://127.0.0.1:{port}/"
            report = _quick(url)
    assert report.final_url == url
    finding = report.finding("redirects")
    assert finding is not None and "does not answer" in finding.title


def test_a_chain_longer_than_followed_says_too_many() -> None:
    async def chain(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: badservers.ConnState
    ) -> None:
        # /, /r/1, /r/2 ...: every answer redirects one further.
        while (req := await badservers.read_request(reader, st)) is not None:
            n = int(req.target.rsplit(b"/", 1)[-1] or b"0") if req.target != b"/" else 0
            head, rest = badservers.response_bytes(
                st, b"", [("Location", f"/r/{n + 1}")], status=302
            )
            writer.write(head + rest)
            await writer.drain()
            if not badservers.finish_cycle(st):
                return

    with badservers.serve(chain) as port:
        report = _quick(f"http://127.0.0.1:{port}/")
    finding = report.finding("redirects")
    assert finding is not None and "too many" in finding.title
    assert any(w.startswith("too many redirects") for w in report.warnings)


@pytest.mark.parametrize("per_connection", [1, 2, 3, 7])
def test_a_silent_close_is_retried_once_and_named(per_connection: int) -> None:
    """A server that closes every connection after N responses without Connection: close:
    each request that finds its connection closed is retried once on a new one (no exit 70,
    no thread traceback, no data lost in the concurrent rungs), and the run says which it
    is: keep-alive refused (N = 1) or kept-alive connections closed early (N > 1)."""
    server = badservers.answers([], close_after=per_connection)
    with badservers.serve(server) as port:
        url = f"http://127.0.0.1:{port}/"
        report = _quick(url)
        probe = run_probe(ProbeOptions(target=parse_url(url), cold=2, warm=12))
    ids = {f.id for f in report.findings}
    if per_connection == 1:
        assert "keepalive-refused" in ids and "keepalive-closed-early" not in ids
        assert not probe.keep_alive.supported
    else:
        assert "keepalive-refused" not in ids, ids
        early = report.finding("keepalive-closed-early")
        assert early is not None and f"after {per_connection} request" in early.title
        assert probe.keep_alive.supported and probe.keep_alive.reconnects >= 1
    queueing = next(r for r in report.rungs if r.name == "queueing")
    assert queueing.status == "ran"
    # Every concurrent client's requests are there.
    assert [r for r in report.requests if re.fullmatch(r"c\d+", r.series)]


@pytest.mark.parametrize("hosts", [1, 3])
def test_a_database_that_never_answers_is_an_error_within_max_time(hosts: int) -> None:
    """--database at a listener that accepts and never answers, with one or several hosts:
    the run ends within --max-time (the session count's connect takes a share of the time
    left, the database rung the rest) with a one-line error naming the database, never a
    run that exits 0 with "No findings"."""
    psycopg = pytest.importorskip("psycopg")
    del psycopg  # imported before the clock starts, as the CLI has by then
    with socket.socket() as db, badservers.serve(badservers.answers([])) as port:
        db.bind(("127.0.0.1", 0))
        db.listen(16)
        db_port = db.getsockname()[1]
        dsn = (
            "postgresql://app:pw-never-shown@" + ",".join([f"127.0.0.1:{db_port}"] * hosts) + "/db"
        )
        start = time.monotonic()
        with pytest.raises(LagscopeError) as err:
            run(f"http://127.0.0.1:{port}/", quick=True, max_time_s=3.0, database=dsn)
        elapsed_s = time.monotonic() - start
    assert err.value.phase == "database" and err.value.exit_code == ExitCode.TIMEOUT
    assert "pw-never-shown" not in err.value.one_line()
    assert "no answer within" in err.value.one_line()
    assert elapsed_s < 3.0 + 2.0  # unbounded, this took --timeout (10 s) per host


async def _endless_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, st: badservers.ConnState
) -> None:
    """A 1 GiB Content-Length, sent until the client stops reading."""
    await badservers.read_request(reader, st)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
    chunk = b"z" * 65536
    for _ in range(1 << 14):
        writer.write(chunk)
        await writer.drain()


def test_an_error_never_suggests_a_flag_the_command_lacks() -> None:
    """The body cap: probe says how to raise it (--max-body); diagnose has no such flag and
    does not send the user to one."""
    from click.testing import CliRunner

    from lagscope.cli import main

    with badservers.serve(_endless_body) as port:
        url = f"http://127.0.0.1:{port}/"
        diagnosed = CliRunner().invoke(main, ["diagnose", url, "--quick"])
        probed = CliRunner().invoke(main, ["probe", url, "--max-body", "1000"])
    assert diagnosed.exit_code == int(ExitCode.PROTOCOL), diagnosed.output
    assert "body larger than the cap" in diagnosed.output
    assert "--max-body" not in diagnosed.output
    assert probed.exit_code == int(ExitCode.PROTOCOL), probed.output
    assert "raise --max-body" in probed.output

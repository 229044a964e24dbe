"""HTTPS with HTTP/2 against plain HTTP/1.1: what a page with assets costs a real browser
behind a per-connection tax, and what TLS costs the JSON endpoint warm.

Run on demand (never in CI), loopback only::

    uv run --all-extras python bench/bench_https.py [--rounds 5] [--tax-ms 300] [--page-only]

1. **The page.** The reference app's HTML page ``/items/`` with its ten static files (3 CSS,
   3 JS, 4 images, served by WhiteNoise; SQLite) served by ``lagscope serve --demo``
   (waitress, HTTP/1.1) and by ``lagscope serve --demo --https`` (granian, TLS, ALPN h2),
   each behind its own 300 ms
   per-connection tax (tests/support/taxproxy.py: an asyncio forwarder, not lagscope inject,
   in a process of its own; it holds each new connection's first bytes). Headless Chromium
   (lagscope.browser, Playwright on Debian's Chromium) trusts the run's local CA as a
   user's browser does after ``lagscope cert install``: on Linux the CA is installed into
   the NSS database of a throwaway home (``$HOME/.pki/nssdb``, which Chromium reads) and
   the browser started with that home; elsewhere, or without NSS's ``certutil``, the CA's
   server key is trusted by this browser only (``--ignore-certificate-errors-spki-list``,
   which costs Chromium more CPU per load than real trust: docs/performance.md). It loads
   each cold in a fresh context, then reloads; the same page without the tax right after,
   for scale; the versions alternate within each round. Reported per version: cold load,
   what its new connections added to it (priced from the load's own timing,
   ``lagscope.browser.setup_ms``: overlapping setups once, so a loaded machine's slower
   rendering does not count) against one tax plus the TLS handshake the browser reported,
   what the tax added (cold minus the untaxed cold of the same round), reload, the
   connections the browser opened (its own count, and the proxy's), protocol. The reload
   in phases, from the browser's own timing: the requests it sent (its files come from its
   cache), new connections, the document's server time (Server-Timing), the document's
   response end, the rendering after it, and the CPU the reload cost Chromium's processes
   and the server (``/proc``, Linux; it does not grow while a process waits for a CPU, as
   the wall time does on a busy machine). A third version, ``serve --demo --server
   granian`` (HTTP/1.1, no TLS; ``--no-control`` leaves it out), is the control: HTTP/2
   against it compares protocols on one server, it against waitress servers on one
   protocol. ``--twin`` adds a second, identical ``serve --demo``: how far apart two equal
   versions measure on this machine at this load.
   (``ignore_https_errors`` instead costs a second connection: Chromium retries the
   errored first one.)
2. **The JSON endpoint warm.** ``/api/items/`` of the reference app (SQLite) through
   ``lagscope probe`` (HTTP/1.1 keep-alive; over TLS with ALPN http/1.1): waitress plain,
   granian plain and granian over TLS, interleaved; warm p50 (and the fastest warm
   request, which a busy machine moves least) and the cold TLS handshake reported
   separately. A fourth row puts a Python relay (lagscope inject, no faults) in front of
   the TLS server: what an acceptor of ours peeking at the first byte, to redirect plain
   http:// on the TLS port, would cost every TLS request (docs/https.md).

Prints a Markdown section for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from lagscope.browser import BrowserSession, PageLoad, Setup, open_browser, setup_ms
from lagscope.cert.authority import spki_sha256_b64
from lagscope.inject import Injector, Route
from lagscope.serve import ServeProcess

# The tax child: support.taxproxy's forwarder in front of one upstream, in its own process
# (a browser driver's event traffic in the same GIL would delay it). "stats" on stdin
# answers one JSON line; EOF stops it.
_TAX_CHILD = """
import json, sys
from support.taxproxy import tax_proxy
with tax_proxy(("127.0.0.1", int(sys.argv[1])), float(sys.argv[2])) as proxy:
    print(f"PORT {proxy.port}", flush=True)
    for line in sys.stdin:
        print(json.dumps({"connections": proxy.connections, "held_ms": proxy.held_ms}), flush=True)
"""


PAGE = "/items/"


class TaxChild:
    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TAX_CHILD, str(upstream_port), str(delay_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the tax proxy did not start: {line!r}")
        self.port = int(line.split()[1])

    def connections(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return int(json.loads(self.proc.stdout.readline())["connections"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class PageSamples:
    cold_ms: list[float] = field(default_factory=list)
    reload_ms: list[float] = field(default_factory=list)
    browser_new: list[int] = field(default_factory=list)  # the browser's count, cold load
    proxy_new: list[int] = field(default_factory=list)  # the tax proxy's, cold + reload
    reload_new: list[int] = field(default_factory=list)
    # The reload in phases, from the browser's own timing: the requests it sent (the rest
    # came from its cache), the document's server time (its Server-Timing total), its
    # response end, and the rendering after it (load event end minus that end).
    reload_requests: list[int] = field(default_factory=list)
    reload_server_ms: list[float] = field(default_factory=list)
    reload_doc_ms: list[float] = field(default_factory=list)
    reload_render_ms: list[float] = field(default_factory=list)
    # CPU the reload cost, from just before it to the browser's report of it: Chromium's
    # processes and the server's (10 ms ticks).
    reload_browser_cpu_ms: list[float] = field(default_factory=list)
    reload_server_cpu_ms: list[float] = field(default_factory=list)
    protocols: set[str] = field(default_factory=set)
    direct_cold_ms: list[float] = field(default_factory=list)  # no tax, for scale
    added_ms: list[float] = field(default_factory=list)  # cold - direct cold, same round
    # What the cold load's new connections added, priced from the load's own timing
    # (lagscope.browser.model.setup_ms: overlapping setups once; the document's own server
    # time beyond its files' counts in it), and the TLS handshake the browser reported for
    # the untaxed load's document: neither moves with the page's rendering time, which a
    # loaded machine stretches.
    setup_ms: list[float] = field(default_factory=list)
    rounds_of_setup: list[int] = field(default_factory=list)
    tls_ms: list[float] = field(default_factory=list)


def _serve(args: list[str], data_dir: Path) -> ServeProcess:
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(data_dir))
    env.pop("LAGSCOPE_DEMO_DATABASE", None)
    proc = ServeProcess([*args, "--host", "127.0.0.1", "--port", "0"], env=env)
    proc.start()
    return proc


def _cpu_ms(server_pid: int | None) -> tuple[float, float]:
    """CPU time so far (user + system, ms) of this process's Chromium processes and of the
    server's process tree, from /proc; NaN where there is none (Windows). CPU spent does
    not grow while a process waits for a CPU, which the wall time of a load on a busy
    machine does."""
    tick = getattr(os, "sysconf", lambda name: 100)("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return float("nan"), float("nan")
    for name in names:
        if not name.isdigit():
            continue
        try:
            stat = Path("/proc", name, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(stat[1]), []).append(int(name))
        cpu[int(name)] = (int(stat[11]) + int(stat[12])) * 1000 / tick

    def tree(root: int) -> list[int]:
        found, todo = [], [root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def is_chromium(pid: int) -> bool:
        try:
            return b"chromium" in Path("/proc", str(pid), "cmdline").read_bytes()
        except OSError:
            return False

    browser = sum(cpu.get(p, 0.0) for p in tree(os.getpid()) if is_chromium(p))
    server = sum(cpu.get(p, 0.0) for p in tree(server_pid)) if server_pid else float("nan")
    return browser, server


@contextmanager
def _trusting_browser(ca_data_dir: Path, home: Path) -> Iterator[tuple[BrowserSession, str]]:
    """A browser that trusts the local CA in ``ca_data_dir``/cert, and how. On Linux with
    NSS's certutil, as a user's does: ``lagscope cert install`` into a throwaway ``home``'s
    NSS database, the browser started with that HOME. Elsewhere through
    --ignore-certificate-errors-spki-list, which cost Chromium more CPU per load than a CA it
    trusts, side by side (docs/performance.md): CPU a user's browser does not spend."""
    if sys.platform == "linux" and shutil.which("certutil"):
        home.mkdir()
        env = dict(os.environ, HOME=str(home), LAGSCOPE_DATA_DIR=str(ca_data_dir))
        subprocess.run(
            [sys.executable, "-m", "lagscope", "cert", "install"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        saved = os.environ.get("HOME")
        with ExitStack() as stack:
            # Only while the driver starts: it and the browser take their environment then.
            os.environ["HOME"] = str(home)
            try:
                session = stack.enter_context(open_browser(timeout_s=60))
            finally:
                if saved is None:
                    os.environ.pop("HOME", None)
                else:
                    os.environ["HOME"] = saved
            yield session, "`lagscope cert install` (the NSS database of a throwaway HOME)"
        return
    leaf_pem = ca_data_dir / "cert" / "localhost.pem"
    leaf = x509.load_pem_x509_certificate(leaf_pem.read_bytes())
    with open_browser(timeout_s=60, trusted_spki=(spki_sha256_b64(leaf),)) as session:
        yield session, "--ignore-certificate-errors-spki-list (this browser only)"


def _page(
    session: BrowserSession, url: str, tax: TaxChild | None, server_pid: int | None = None
) -> tuple[PageLoad, PageLoad, int, Setup, tuple[float, float]]:
    """A cold load and its reload; the last item is the CPU the reload alone cost (ms),
    Chromium's processes and the server's."""
    marks: dict[str, tuple[float, float]] = {}

    def mark(when: str) -> Callable[[str], None]:
        def at(label: str) -> None:
            if label == "reload":
                marks[when] = _cpu_ms(server_pid)

        return at

    before = tax.connections() if tax else 0
    run = session.visit(url, reload=True, before_load=mark("start"), after_load=mark("end"))
    after = tax.connections() if tax else 0
    cold, reload = run.load("cold"), run.load("reload")
    assert cold is not None and reload is not None
    assert all(r.status == 200 for r in cold.resources), [r.status for r in cold.resources]
    spent = (
        marks["end"][0] - marks["start"][0],
        marks["end"][1] - marks["start"][1],
    )
    return cold, reload, after - before, setup_ms(cold, run.loads), spent


H1, H2, GRANIAN_H1, TWIN = (
    "HTTP/1.1 (serve)",
    "HTTP/2 (serve --https)",
    "HTTP/1.1 on granian (serve --server granian)",
    "HTTP/1.1 (serve), a second copy",
)


def _reload_phases(s: PageSamples, reload: PageLoad) -> None:
    doc = reload.document
    assert doc is not None
    s.reload_requests.append(sum(not r.from_cache for r in reload.resources))
    total = [m.dur_ms for m in doc.server_timing if m.name == "total" and m.dur_ms is not None]
    s.reload_server_ms.append(total[0] if total else float("nan"))
    s.reload_doc_ms.append(doc.end_ms)
    s.reload_render_ms.append(reload.load_ms - doc.end_ms)


def bench_page(
    rounds: int, tax_ms: float, data_dir: Path, control: bool = True, twin: bool = False
) -> tuple[dict[str, PageSamples], str]:
    """The page part's samples per version, and how its browser trusted the local CA."""
    # The control: serve's HTTP/1.1 on granian, the server --https runs, without TLS and
    # HTTP/2: HTTP/2 against it compares protocols on one server, waitress against it
    # servers on one protocol.
    versions = {H1: ["--demo"], H2: ["--demo", "--https"]}
    if control:
        versions[GRANIAN_H1] = ["--demo", "--server", "granian"]
    if twin:  # the same server twice: how far apart two identical versions measure
        versions[TWIN] = ["--demo"]
    dirs = {name: data_dir / f"page-{i}" for i, name in enumerate(versions)}
    servers = {name: _serve(args, dirs[name]) for name, args in versions.items()}
    taxes = {name: TaxChild(p.port, tax_ms / 1000) for name, p in servers.items()}
    samples = {name: PageSamples() for name in versions}
    try:
        with _trusting_browser(dirs[H2], data_dir / "home") as (session, trust):
            # one untimed visit each: the browser's and the servers' first-use costs
            for name, server in servers.items():
                scheme = "https" if "--https" in versions[name] else "http"
                session.visit(f"{scheme}://127.0.0.1:{server.port}{PAGE}", reload=False)
            for i in range(rounds):
                # Each version in each place of the round equally often: with three,
                # alternating the order would keep the middle one always in the middle
                # (after another's visit, never first), a place of its own.
                shift = i % len(versions)
                order = list(versions)[shift:] + list(versions)[:shift]
                if (i // len(versions)) % 2:
                    order.reverse()
                for name in order:
                    scheme = "https" if "--https" in versions[name] else "http"
                    s = samples[name]
                    cold, reload, opened, setup, spent = _page(
                        session,
                        f"{scheme}://127.0.0.1:{taxes[name].port}{PAGE}",
                        taxes[name],
                        servers[name].pid,
                    )
                    s.reload_browser_cpu_ms.append(spent[0])
                    s.reload_server_cpu_ms.append(spent[1])
                    s.setup_ms.append(setup.added_ms)
                    s.rounds_of_setup.append(setup.rounds)
                    s.cold_ms.append(cold.load_ms)
                    s.reload_ms.append(reload.load_ms)
                    s.browser_new.append(cold.new_connections)
                    s.reload_new.append(reload.new_connections)
                    _reload_phases(s, reload)
                    s.proxy_new.append(opened)
                    s.protocols |= {r.protocol for r in cold.resources}
                    direct, _, _, _, _ = _page(
                        session, f"{scheme}://127.0.0.1:{servers[name].port}{PAGE}", None
                    )
                    s.direct_cold_ms.append(direct.load_ms)
                    # The handshake without the tax: the proxy holds a connection's first
                    # bytes, which over TLS are the ClientHello, so the taxed load's TLS
                    # phase holds the tax too.
                    doc = direct.document
                    if doc is not None and doc.tls_ms:
                        s.tls_ms.append(doc.tls_ms)
                    s.added_ms.append(cold.load_ms - direct.load_ms)
                    print(
                        f"round {i + 1} {name}: cold {cold.load_ms:.0f} ms "
                        f"({cold.new_connections} new, proxy {opened}), reload "
                        f"{reload.load_ms:.0f} ms (document {s.reload_doc_ms[-1]:.0f}, server "
                        f"{s.reload_server_ms[-1]:.0f}), direct cold {direct.load_ms:.0f} ms",
                        file=sys.stderr,
                    )
    finally:
        for t in taxes.values():
            t.close()
        for p in servers.values():
            p.stop()
    return samples, trust


def _probe(url: str, cacert: Path | None) -> tuple[float, float, float | None]:
    argv = [sys.executable, "-m", "lagscope", "probe", "--cold", "10", "--warm", "200", "--json"]
    if cacert is not None:
        argv += ["--cacert", str(cacert)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout)
    series = {s["name"]: s["phases"] for s in report["series"]}
    tls = series["cold"].get("tls")
    warm = series["warm"]["total"]
    return float(warm["p50_ms"]), float(warm["min_ms"]), (float(tls["p50_ms"]) if tls else None)


def bench_json(
    rounds: int, data_dir: Path
) -> dict[str, tuple[list[float], list[float], list[float]]]:
    versions = {
        "waitress, plain HTTP/1.1 (serve)": ["--demo"],
        "granian, plain HTTP/1.1": ["--demo", "--server", "granian"],
        "granian, TLS (serve --https)": ["--demo", "--https"],
    }
    # A data directory each: the reference app seeds its own SQLite file (and the https one
    # makes its CA there); three servers seeding one file at once would lock each other out.
    dirs = {name: data_dir / f"json-{i}" for i, name in enumerate(versions)}
    servers = {name: _serve(args, dirs[name]) for name, args in versions.items()}
    # The design that would answer a plain http:// request on the TLS port with a redirect:
    # our own acceptor peeking at the first byte, which (granian accepts and handshakes in
    # Rust) must then relay every byte of every TLS connection to granian. lagscope
    # inject without faults is such a relay (asyncio, in this process).
    tls_name = "granian, TLS (serve --https)"
    relayed = "granian, TLS through a Python relay (peek-at-accept design)"
    relay = Injector(
        [Route(("127.0.0.1", 0), ("127.0.0.1", servers[tls_name].port), [], "relay")]
    ).start()
    out: dict[str, tuple[list[float], list[float], list[float]]] = {
        n: ([], [], []) for n in [*versions, relayed]
    }
    urls = {name: f"{server.url}/api/items/" for name, server in servers.items()}
    urls[relayed] = f"https://127.0.0.1:{relay.address(0)[1]}/api/items/"
    try:
        for i in range(rounds):
            order = list(urls) if i % 2 == 0 else list(reversed(urls))
            for name in order:
                https = name in (tls_name, relayed)
                cacert = dirs[tls_name] / "cert" / "rootCA.pem" if https else None
                warm, fastest, tls = _probe(urls[name], cacert)
                out[name][0].append(warm)
                if tls is not None:
                    out[name][1].append(tls)
                out[name][2].append(fastest)
                print(f"round {i + 1} {name}: warm p50 {warm:.2f} ms tls {tls}", file=sys.stderr)
    finally:
        relay.stop()
        for p in servers.values():
            p.stop()
    return out


def _ratios(top: list[float], bottom: list[float]) -> str:
    """Side by side: the ratio within each round (this machine's speed drifts between
    rounds), and the median of those."""
    each = [a / b for a, b in zip(top, bottom, strict=True) if b > 0]
    shown = ", ".join(f"{r:.2f}" for r in each)
    return f"median {_med(each):.2f} ({shown})"


def _loadavg() -> tuple[float, ...]:
    """The 1/5/15-minute load average (none on Windows): how busy the machine was."""
    getloadavg = getattr(os, "getloadavg", None)
    return tuple(getloadavg()) if getloadavg is not None else (float("nan"),) * 3


def _quartile(values: list[float]) -> float:
    """The lower quartile: what a load takes when little else runs, less noisy than the
    single fastest."""
    return statistics.quantiles(values, n=4)[0] if len(values) > 1 else _med(values)


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json-rounds", type=int, default=3)
    parser.add_argument("--tax-ms", type=float, default=300.0)
    parser.add_argument(
        "--page-only", action="store_true", help="the page part only (no JSON endpoint)"
    )
    parser.add_argument("--no-control", action="store_true", help="no HTTP/1.1-on-granian page row")
    parser.add_argument(
        "--twin",
        action="store_true",
        help="a second, identical serve --demo row: the spread of two equal versions",
    )
    args = parser.parse_args()
    load_before = _loadavg()
    with tempfile.TemporaryDirectory(prefix="lagscope-bench-https-") as tmp:
        data_dir = Path(tmp)
        page, trust = bench_page(
            args.rounds, args.tax_ms, data_dir, control=not args.no_control, twin=args.twin
        )
        load_after_page = _loadavg()
        json_ep = None if args.page_only else bench_json(args.json_rounds, data_dir)
    h1, h2 = page[H1], page[H2]
    tax = args.tax_ms
    print("## HTTPS with HTTP/2: a page with assets behind a per-connection tax\n")
    flags = " --page-only" if args.page_only else f" --json-rounds {args.json_rounds}"
    flags += " --no-control" if args.no_control else ""
    flags += " --twin" if args.twin else ""
    print(
        f"Command: `uv run --all-extras python bench/bench_https.py --rounds {args.rounds}"
        f"{flags} --tax-ms {tax:g}`  "
    )
    print(
        "Load average (1/5/15 min) before the page part "
        f"{'/'.join(f'{v:.2f}' for v in load_before)}, after it "
        f"{'/'.join(f'{v:.2f}' for v in load_after_page)}  "
    )
    print(
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}\n"
    )
    print(
        f"Headless Chromium, a fresh context per cold load, {tax:g} ms tax per new connection, "
        f"{args.rounds} interleaved rounds (medians; min-max in brackets). The browser "
        f"trusts the run's local CA through {trust}.\n"
    )
    print(
        "| version | cold load ms | setup the new connections added, ms (in taxes) | rounds "
        "of setup | connections opened (browser / proxy) | protocol | reload ms | cold "
        "without the tax ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s in page.items():
        print(
            f"| {name} | {_med(s.cold_ms):.0f} [{min(s.cold_ms):.0f}-{max(s.cold_ms):.0f}] | "
            f"{_med(s.setup_ms):.0f} ({_med(s.setup_ms) / tax:.2f}) | "
            f"{sorted(set(s.rounds_of_setup))} | {sorted(set(s.browser_new))} / "
            f"{sorted(set(s.proxy_new))} | {', '.join(sorted(s.protocols))} | "
            f"{_med(s.reload_ms):.0f} [{min(s.reload_ms):.0f}-{max(s.reload_ms):.0f}] | "
            f"{_med(s.direct_cold_ms):.0f} |"
        )
    print()
    handshake = _med(h2.tls_ms) if h2.tls_ms else 0.0
    print(
        f"- Cold load, added by the tax (cold minus the same page's untaxed cold in the same "
        f"round, which has its TLS handshake too): HTTP/2 {_med(h2.added_ms):.0f} ms = "
        f"{_med(h2.added_ms) / tax:.2f} taxes (target <= 1.3), HTTP/1.1 "
        f"{_med(h1.added_ms):.0f} ms = {_med(h1.added_ms) / tax:.2f} taxes"
    )
    print(
        f"- Cold load, what its new connections added (the load's own timing): HTTP/2 "
        f"{_med(h2.setup_ms):.0f} ms = {_med(h2.setup_ms) / (tax + handshake):.2f}x one tax + "
        f"the untaxed TLS handshake ({tax:g} + {handshake:.1f} ms), HTTP/1.1 "
        f"{_med(h1.setup_ms):.0f} ms = {_med(h1.setup_ms) / tax:.2f} taxes"
    )
    print(f"- HTTP/2 cold / HTTP/1.1 cold, per round: {_ratios(h2.cold_ms, h1.cold_ms)}")
    print(
        f"- HTTP/2 reload / HTTP/1.1 reload, per round: {_ratios(h2.reload_ms, h1.reload_ms)}; "
        f"fastest / fastest {min(h2.reload_ms) / min(h1.reload_ms):.2f}, the faster quarter "
        f"{_quartile(h2.reload_ms) / _quartile(h1.reload_ms):.2f} (target <= 1.1)"
    )
    if GRANIAN_H1 in page:
        g1 = page[GRANIAN_H1]
        print(
            "- Same server, HTTP/2 over TLS / HTTP/1.1: granian --https reload / granian "
            f"plain reload, per round: {_ratios(h2.reload_ms, g1.reload_ms)}"
        )
        print(
            "- Same protocol, granian / waitress: HTTP/1.1 reload, per round: "
            f"{_ratios(g1.reload_ms, h1.reload_ms)}"
        )
    if TWIN in page:
        print(
            "- Two identical versions, the second copy / serve: reload, per round: "
            f"{_ratios(page[TWIN].reload_ms, h1.reload_ms)}"
        )
    print()
    print(
        "The reload in phases (medians; the browser's own timing): requests it sent (the "
        "rest from its cache), new connections, the document's server time (Server-Timing "
        "total), the document's response end, and the rendering after it to the load "
        "event's end.\n"
    )
    print(
        "| version | requests sent | new connections | server ms | document done ms "
        "[min-max] | rendering after it ms [min-max] | reload ms | CPU per reload ms, "
        "Chromium / server |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s in page.items():
        print(
            f"| {name} | {sorted(set(s.reload_requests))} | {sorted(set(s.reload_new))} | "
            f"{_med(s.reload_server_ms):.1f} | {_med(s.reload_doc_ms):.1f} "
            f"[{min(s.reload_doc_ms):.0f}-{max(s.reload_doc_ms):.0f}] | "
            f"{_med(s.reload_render_ms):.0f} [{min(s.reload_render_ms):.0f}-"
            f"{max(s.reload_render_ms):.0f}] | {_med(s.reload_ms):.0f} | "
            f"{_med(s.reload_browser_cpu_ms):.0f} / {_med(s.reload_server_cpu_ms):.0f} |"
        )
    print(
        "\n- Document done, HTTP/2 / HTTP/1.1, per round: "
        f"{_ratios(h2.reload_doc_ms, h1.reload_doc_ms)}"
    )
    print(
        "- Rendering after the document, HTTP/2 / HTTP/1.1, per round: "
        f"{_ratios(h2.reload_render_ms, h1.reload_render_ms)}"
    )
    cpu_h1 = _med(h1.reload_browser_cpu_ms)
    twin_cpu = (
        f"; the twin / serve {_med(page[TWIN].reload_browser_cpu_ms) / cpu_h1:.2f}"
        if TWIN in page
        else ""
    )
    print(
        "- Chromium's CPU per reload, HTTP/2 / HTTP/1.1: median / median "
        f"{_med(h2.reload_browser_cpu_ms) / cpu_h1:.2f}{twin_cpu}"
    )
    if json_ep is None:
        return
    print()
    print(
        "JSON endpoint `/api/items/` (78 KB), `lagscope probe --cold 10 --warm 200`, "
        f"{args.json_rounds} interleaved rounds:\n"
    )
    print("| server | warm p50 ms (per round) | fastest warm ms | cold TLS handshake p50 ms |")
    print("|---|---|---|---|")
    for name, (warm, tls, fastest) in json_ep.items():
        shown = ", ".join(f"{w:.2f}" for w in warm)
        print(
            f"| {name} | {_med(warm):.2f} ({shown}) | {min(fastest):.2f} | "
            f"{f'{_med(tls):.2f}' if tls else '-'} |"
        )
    base, _, base_min = json_ep["waitress, plain HTTP/1.1 (serve)"]
    same, _, same_min = json_ep["granian, plain HTTP/1.1"]
    over_tls, _, tls_min = json_ep["granian, TLS (serve --https)"]
    through, _, through_min = json_ep["granian, TLS through a Python relay (peek-at-accept design)"]
    print()
    print(
        f"- TLS warm / serve's plain warm (waitress), per round: {_ratios(over_tls, base)}; "
        f"fastest / fastest {min(tls_min) / min(base_min):.2f} (target <= 1.1)"
    )
    print(
        f"- TLS warm / granian plain warm (TLS alone), per round: {_ratios(over_tls, same)}; "
        f"fastest / fastest {min(tls_min) / min(same_min):.2f}"
    )
    print(
        "- TLS through the relay / TLS direct (what a redirect of plain http:// on the TLS "
        f"port would cost), per round: {_ratios(through, over_tls)}; fastest / fastest "
        f"{min(through_min) / min(tls_min):.2f}"
    )


if __name__ == "__main__":
    main()

"""Benchmark ``lagscope diagnose``: wall time on healthy local apps, and accuracy on ghost stacks.

Run on demand (never in CI), loopback only; with ``--runs 2 --wall-reps 2``, about 21
minutes at load average 8.5 on 2 vCPUs (37 stacks)::

    uv run --all-extras python bench/bench_diagnose.py

It prints a Markdown section for docs/performance.md ("## diagnose").

1. **Wall time** of a default and a ``--quick`` run against two healthy apps: a WSGI hello
   world on waitress, and the reference app served by ``lagscope serve --demo`` on SQLite
   (``/api/items/``). Both as a whole process (``python -m lagscope diagnose URL -o FILE``,
   imports included; the saved report names the findings) and in process
   (``lagscope.diagnose.run``), the four kinds interleaved round by round. Targets: default
   <= 10 s, ``--quick`` <= 3 s.
2. **Accuracy**: one ghost stack per scenario, each diagnosed ``--runs`` times by default and
   by ``--quick`` runs (interleaved). For every expected finding: the truth, the reported
   ``cost_ms``, the error, and any warning-or-worse finding that was not expected.

Every server runs in a child process (``_stack SCENARIO PG_PORT`` mode), never in this one,
so the diagnosing client does not share a GIL with the stack it measures. The child speaks a line
protocol on stdin/stdout: ``next`` prepares a run and answers its URL, ``truth`` answers the
truth for the run just made; end of stdin tears the stack down.

Truths, from what the stack itself records rather than the nominal setting:

- a connection tax: the tax inject applied on that run's connections (the ``--log`` of the
  ``lagscope inject`` process, ``tax_applied_ms``, median);
- a database connect: psycopg connects through the taxed hop, timed by the child, three
  just before the run and three just after (median of six; the scenario tests do the same);
- a sleep: the sleep;
- the small-write stall: response times of requests 2-9 on one keep-alive connection to
  the same server, read with a plain socket just before the run, their lower quartile (load
  only adds to a timer; the scenario tests take Linux's delayed ACK, ~43 ms);
- a tax applied by tests/support/ghosts.py's forwarder: the delays it really applied during
  the run (median); a sequential client's wait on an address that drops connects: the
  connect timeout of the run (2 s); a DNS delay: the delay;
- a localhost fallback: refused connects to ``::1``, timed by the child;
- a connect held by the diagnosing client's network, a jittered tax: the nominal hold, the
  distribution's median (a run samples a few draws of it);
- a body held in proportion to its size: what the forwarder held each response, in all.

The stacks are the ones tests/diagnose/test_scenarios.py builds, from the same parts:
waitress, the suite's Django app (tests/django_settings.py), ``lagscope inject``'s
connection tax, real PostgreSQL (tests/support/pg.py), real nginx (tests/support/nginx.py),
the suite's misbehaving server (tests/support/badservers.py). Each tax proxy is its own
process, as in bench_serve. Those helpers import as the tests import them (``support``,
``django_settings``): the project's editable install puts tests/ on ``sys.path``
(``dev-mode-dirs`` in pyproject.toml, the root pytest's ``pythonpath`` names too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import queue
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTOCOL_PREFIX = "@@ "
CHILD_TIMEOUT_S = 120.0
SUBPROCESS_TIMEOUT_S = 120.0
# The scenario tests' tolerance: within 15 % of the truth, or 5 ms for small truths.
TOLERANCE_REL = 0.15
TOLERANCE_MS = 5.0
PG_USER = "postgres"

WsgiApp = Callable[..., Iterable[bytes]]


# --------------------------------------------------------------------------- WSGI apps


def hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    body = b'{"ok": true}'
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def sleepy_100ms(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    time.sleep(0.1)
    return hello(environ, start_response)


# --------------------------------------------------------------------------- child: the stacks


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(PROTOCOL_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _url(address: tuple[str, int], path: str = "/") -> str:
    return f"http://{address[0]}:{address[1]}{path}"


@dataclass
class Built:
    """A running stack: how to diagnose it and how to know the truth of one run."""

    url: str
    # finding id -> how its truth is known: "tax" (inject records), "db" (taxed psycopg
    # connects), "refused" (connects to ::1), or a fixed number of ms (a sleep, a timer).
    expected: dict[str, str | float]
    resolve: list[str] = field(default_factory=list)
    proxy: TaxProxy | None = None  # the taxed hop whose records give the tax truth
    # A second taxed hop ("tax2" truths): combined ghosts tax two hops at once.
    proxy2: TaxProxy | None = None
    db_port: int = 0
    refused_port: int = 0
    stall_port: int = 0
    stall_path: str = "/"
    next_url: Callable[[int], str] | None = None
    # The resolver the diagnosing client uses: {"hosts": {name: [addr, ...]}} or
    # {"dns_port": N} (tests/support/ghosts.py's HostsNetwork / DnsNetwork).
    network: dict[str, Any] | None = None
    timeout_s: float | None = None
    # A tests/support/ghosts.py forwarder: "applied" truths are the delays it applied.
    ghost: Any = None
    _ghost_mark: int = 0
    _mark: int = 0
    _mark2: int = 0
    _db_connects: list[float] = field(default_factory=list)
    _refused_truth: float | None = None
    _stall_truth: float | None = None
    _run: int = 0

    def prepare(self) -> dict[str, Any]:
        if self.ghost is not None:
            self._ghost_mark = len(self.ghost.applied_ms)
        if "db" in self.expected.values():
            self._db_connects = _pg_connect_ms(self.db_port, 3)
        if self.proxy is not None:
            self._mark = len(self.proxy.records())
        if self.proxy2 is not None:
            self._mark2 = len(self.proxy2.records())
        if "refused" in self.expected.values():
            self._refused_truth = statistics.median(_refused_ms(self.refused_port, 5))
        if "stall" in self.expected.values():
            # Load only ever adds to a timer's delay: the lower quartile is the timer.
            stalls = sorted(_reused_request_ms(self.stall_port, 8, self.stall_path))
            self._stall_truth = stalls[len(stalls) // 4]
        url = self.next_url(self._run) if self.next_url is not None else self.url
        self._run += 1
        return {
            "url": url,
            "resolve": self.resolve,
            "network": self.network,
            "timeout_s": self.timeout_s,
        }

    def truth(self) -> dict[str, Any]:
        applied = _applied(self.proxy, self._mark)
        applied2 = _applied(self.proxy2, self._mark2)
        if "db" in self.expected.values():
            # Three connects before the run and three after: a load spike during the run
            # moves both the app's connects and the truth.
            self._db_connects += _pg_connect_ms(self.db_port, 3)
        truths: dict[str, float | None] = {}
        for finding_id, source in self.expected.items():
            if source == "tax":
                truths[finding_id] = statistics.median(applied) if applied else None
            elif source == "tax2":
                truths[finding_id] = statistics.median(applied2) if applied2 else None
            elif source == "db":
                truths[finding_id] = statistics.median(self._db_connects)
            elif source == "refused":
                truths[finding_id] = self._refused_truth
            elif source == "applied":
                done = self.ghost.applied_ms[self._ghost_mark :] if self.ghost is not None else []
                truths[finding_id] = statistics.median(done) if done else None
            elif source == "stall":
                truths[finding_id] = self._stall_truth
            else:
                truths[finding_id] = float(source)
        return {"truths": truths, "taxed_connections": len(applied)}


def _applied(proxy: TaxProxy | None, mark: int) -> list[float]:
    """The taxes ``proxy`` applied since its record ``mark``."""
    if proxy is None:
        return []
    # Records are written when a connection ends; the run's client connections have been
    # closed, the proxy may still be finishing the last ones.
    deadline = time.monotonic() + 2.0
    seen = -1
    records: list[Any] = []
    while time.monotonic() < deadline:
        records = proxy.records()[mark:]
        if len(records) == seen:
            break
        seen = len(records)
        time.sleep(0.1)  # settle interval between record counts, not a readiness wait
    return [r.tax_applied_ms for r in records if r.tax_applied_ms is not None]


def _pg_connect_ms(port: int, samples: int) -> list[float]:
    import psycopg

    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        conn = psycopg.connect(
            host="127.0.0.1", port=port, user=PG_USER, dbname="postgres", gssencmode="disable"
        )
        times.append((time.perf_counter() - t0) * 1e3)
        conn.close()
    return times


def _refused_ms(port: int, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            with contextlib.suppress(OSError):
                s.connect(("::1", port))
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _reused_request_ms(port: int, samples: int, path: str = "/") -> list[float]:
    """Whole-response times of requests 2.. on one keep-alive connection, read with a plain
    socket: against a server that does no work, the time is the small-write stall."""
    import h11

    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        conn = h11.Connection(h11.CLIENT)
        for k in range(samples + 1):
            t0 = time.perf_counter()
            head = conn.send(
                h11.Request(method="GET", target=path, headers=[("Host", "127.0.0.1")])
            )
            sock.sendall((head or b"") + (conn.send(h11.EndOfMessage()) or b""))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                elif isinstance(event, h11.EndOfMessage):
                    break
            if k:  # the first request rides the connection's quick-ACK start
                times.append((time.perf_counter() - t0) * 1e3)
            conn.start_next_cycle()
    return times


@dataclass
class TaxProxy:
    """A ``lagscope inject`` process with a connection tax; its ``--log`` is the truth."""

    address: tuple[str, int]
    log: Path

    def records(self) -> list[Any]:
        from lagscope.inject import ConnectionRecord
        from lagscope.inject.log import record_from_json

        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        # The last line may be half-written while the proxy appends it.
        out: list[ConnectionRecord] = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(record_from_json(line))
        return out


@contextlib.contextmanager
def _taxed(upstream: tuple[str, int], tax_ms: float, select: str = "") -> Iterator[TaxProxy]:
    """``lagscope inject --fault tax:MS`` in its own process, as in bench_serve: a user-space
    proxy in the app's process would compete with the app for its GIL. ``select``: inject's
    selection keys (``every=3``: one connection in three). Readiness: the
    ``listening on HOST:PORT`` line."""
    with tempfile.TemporaryDirectory(prefix="lagscope-bench-inject-") as tmp:
        log = Path(tmp) / "truth.jsonl"
        upstream_arg = f"{upstream[0]}:{upstream[1]}"
        argv = [sys.executable, "-m", "lagscope", "inject", "--listen", "127.0.0.1:0"]
        argv += [
            "--upstream",
            upstream_arg,
            "--fault",
            f"tax:{tax_ms:g}{select}",
            "--log",
            str(log),
        ]
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            match = re.search(r"listening on (\S+):(\d+) ->", ready)
            if match is None:
                raise RuntimeError(f"lagscope inject did not start: {ready!r}")
            # Keep reading its output so a full pipe never blocks it.
            drain = threading.Thread(target=proc.stdout.read, daemon=True)
            drain.start()
            yield TaxProxy((match.group(1), int(match.group(2))), log)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def _django(databases: dict[str, dict[str, Any]], common: bool = True) -> WsgiApp:
    """The suite's Django app (tests/django_settings.py) with extra database aliases;
    ``common=False``: without CommonMiddleware, so responses have no Content-Length and
    waitress closes the connection after each."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    import django_settings

    values = {k: getattr(django_settings, k) for k in dir(django_settings) if k.isupper()}
    values["DATABASES"] = {**django_settings.DATABASES, **databases}
    if not common:
        values["MIDDLEWARE"] = [
            m for m in values["MIDDLEWARE"] if not m.endswith("CommonMiddleware")
        ]
    settings.configure(**values)
    django.setup()
    return WSGIHandler()


def _pg_alias(port: int, conn_max_age: int | None) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": PG_USER,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CONN_MAX_AGE": conn_max_age,
        "OPTIONS": {"gssencmode": "disable"},
    }


_KEEPALIVE_PIECES = ("keepalive 16;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";')


def _without_keepalive(text: str) -> str:
    for piece in _KEEPALIVE_PIECES:
        text = text.replace(piece, "")
    return text


@contextlib.contextmanager
def _nginx_without_upstream_keepalive(upstream: tuple[str, int]) -> Iterator[int]:
    """nginx with ``lagscope nginx-config``'s config minus its three upstream keep-alive
    lines (the suite's launcher, tests/support/nginx.py); yields its port."""
    from lagscope.nginx.config import Endpoint
    from support.nginx import nginx_bin, running_nginx

    nginx = nginx_bin()
    if nginx is None:
        raise RuntimeError("nginx not installed")
    prefix = Path(tempfile.mkdtemp(prefix="lagscope-bench-nginx-"))
    prefix.chmod(0o755)  # under root the worker runs as nobody and must reach the prefix
    try:
        with running_nginx(
            nginx, prefix, Endpoint(*upstream), transform=_without_keepalive
        ) as port:
            yield port
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def build_stack(name: str, stack: contextlib.ExitStack, pg_port: int) -> Built:
    from support import badservers
    from support.wsgi import waitress_server

    if name == "hello":
        return Built(_url(stack.enter_context(waitress_server(hello))), {})
    if name.startswith("tax"):
        tax_ms = float(name[3:])
        app = stack.enter_context(waitress_server(hello))
        inj = stack.enter_context(_taxed(app, tax_ms))
        return Built(_url(inj.address), {"connection-setup-tax": "tax"}, proxy=inj)
    if name == "localhost":
        _, port = stack.enter_context(waitress_server(hello))
        return Built(
            f"http://localhost:{port}/",
            {"localhost-fallback": "refused"},
            resolve=["localhost:[::1],127.0.0.1"],
            refused_port=port,
        )
    if name == "nagle":
        port = stack.enter_context(badservers.serve(badservers.nagle_split))
        return Built(f"http://127.0.0.1:{port}/", {"small-write-stall": "stall"}, stall_port=port)
    if name == "queueing":
        app = stack.enter_context(waitress_server(sleepy_100ms, threads=1))
        return Built(_url(app), {"server-queueing": 100.0, "slow-app": 100.0})
    if name == "slowview":
        app = stack.enter_context(waitress_server(_django({})))
        return Built(_url(app, "/sleep/?s=0.2"), {"slow-app": 200.0})
    if name == "nginx":
        app = stack.enter_context(waitress_server(_django({})))
        inj = stack.enter_context(_taxed(app, 200.0))
        port = stack.enter_context(_nginx_without_upstream_keepalive(inj.address))
        return Built(f"http://127.0.0.1:{port}/plain/", {"upstream-no-keepalive": "tax"}, proxy=inj)
    if name == "cma0":
        inj = stack.enter_context(_taxed(("127.0.0.1", pg_port), 200.0))
        _, db_port = inj.address
        app = stack.enter_context(waitress_server(_django({"perreq": _pg_alias(db_port, 0)})))
        return Built(
            _url(app, "/db/perreq/?n=2"),
            {"db-connect-per-request": "db"},
            proxy=inj,
            db_port=db_port,
        )
    if name == "warmup":
        inj = stack.enter_context(_taxed(("127.0.0.1", pg_port), 200.0))
        _, db_port = inj.address
        django_app = _django({"persist": _pg_alias(db_port, None)})
        server = contextlib.ExitStack()
        stack.callback(server.close)

        def fresh_server(_: int) -> str:
            # Persistent connections live in waitress's threads: every run gets a freshly
            # started server (new threads, no connection yet), as after a deploy.
            server.close()
            app = server.enter_context(waitress_server(django_app, threads=4))
            return _url(app, "/db/persist/?n=2")

        return Built("", {"worker-warmup": "db"}, proxy=inj, db_port=db_port, next_url=fresh_server)
    if name == "cma0-tax":
        # Two ghosts at once: a tax on the client's new connections, and a database
        # connect per request through a taxed database hop.
        db = stack.enter_context(_taxed(("127.0.0.1", pg_port), 100.0))
        app = stack.enter_context(waitress_server(_django({"perreq": _pg_alias(db.address[1], 0)})))
        inj = stack.enter_context(_taxed(app, 100.0))
        return Built(
            _url(inj.address, "/db/perreq/?n=2"),
            {"connection-setup-tax": "tax", "db-connect-per-request": "db"},
            proxy=inj,
            db_port=db.address[1],
        )
    if name == "nginx-tax":
        # A tax on the client's connections to nginx, and nginx opening a taxed upstream
        # connection per request.
        app = stack.enter_context(waitress_server(_django({})))
        upstream = stack.enter_context(_taxed(app, 150.0))
        port = stack.enter_context(_nginx_without_upstream_keepalive(upstream.address))
        inj = stack.enter_context(_taxed(("127.0.0.1", port), 100.0))
        return Built(
            _url(inj.address, "/plain/"),
            {"connection-setup-tax": "tax", "upstream-no-keepalive": "tax2"},
            proxy=inj,
            proxy2=upstream,
        )
    if name == "slowview-tax":
        app = stack.enter_context(waitress_server(_django({})))
        inj = stack.enter_context(_taxed(app, 100.0))
        return Built(
            _url(inj.address, "/sleep/?s=0.15"),
            {"slow-app": 150.0, "connection-setup-tax": "tax"},
            proxy=inj,
        )
    if name == "nocommon-tax":
        # Django without CommonMiddleware on waitress: no Content-Length, so waitress
        # closes every connection, and each pays the tax.
        app = stack.enter_context(waitress_server(_django({}, common=False)))
        inj = stack.enter_context(_taxed(app, 100.0))
        return Built(
            _url(inj.address, "/plain/"),
            {"keepalive-refused": "tax", "connection-setup-tax": "tax"},
            proxy=inj,
        )
    if name in ("limit-tax", "idle-tax"):
        # Keep-alive closed early behind a 60 ms tax: after 3 responses with Connection:
        # close (a request limit), or after 0.3 s idle without a word (an idle timeout).
        handler = badservers.closes_after(3) if name == "limit-tax" else badservers.idle_close(0.3)
        port = stack.enter_context(badservers.serve(handler))
        inj = stack.enter_context(_taxed(("127.0.0.1", port), 60.0))
        return Built(
            _url(inj.address),
            {"connection-setup-tax": "tax", "keepalive-closed-early": "tax"},
            proxy=inj,
        )
    from support import ghosts

    if name == "blackhole":
        _, port = stack.enter_context(waitress_server(hello))
        stack.enter_context(ghosts.blackholed_ipv6(port))
        # A sequential client waits its whole connect timeout on ::1: 2 s here.
        return Built(
            f"http://localhost:{port}/",
            {"localhost-fallback": 2000.0},
            network={"hosts": {"localhost": ["::1", "127.0.0.1"]}},
            timeout_s=2.0,
        )
    if name.startswith("closer"):
        # A server that closes every connection, no Server-Timing, behind a 60 ms tax paid
        # when the connection is accepted (closer) or on its first bytes (closer-stream).
        port = stack.enter_context(badservers.serve(badservers.refuses_keepalive))
        stream = name == "closer-stream"
        proxy = stack.enter_context(
            ghosts.tax_proxy(
                ("127.0.0.1", port), on_accept_s=0.0 if stream else 0.06, first_data_s=0.06 * stream
            )
        )
        return Built(
            _url(proxy),
            {"keepalive-refused": "applied", "connection-setup-tax": "applied"},
            ghost=proxy,
        )
    if name == "outside":
        app = stack.enter_context(waitress_server(_django({})))
        proxy = stack.enter_context(ghosts.tax_proxy(app, every_response_s=0.08))
        return Built(_url(proxy, "/plain/"), {"outside-app-every-request": "applied"}, ghost=proxy)
    if name == "dns":
        _, port = stack.enter_context(waitress_server(hello))
        dns_port = stack.enter_context(ghosts.dns_server({"app.test": ["127.0.0.1"]}, 0.25))
        return Built(
            f"http://app.test:{port}/",
            {"slow-name-resolution": "applied"},
            network={"dns_port": int(dns_port)},
            ghost=dns_port,
        )
    if name == "runserver":
        app = stack.enter_context(ghosts.runserver(_django({})))
        return Built(
            _url(app, "/plain/"),
            {"small-write-stall": "stall"},
            stall_port=app[1],
            stall_path="/plain/",
        )
    if name == "runserver-pg":
        proxy = stack.enter_context(ghosts.tax_proxy(("127.0.0.1", pg_port), on_accept_s=0.05))
        django_app = _django({"perconn": _pg_alias(proxy[1], 60)})
        app = stack.enter_context(ghosts.runserver(django_app))
        return Built(
            _url(app, "/db/perconn/?n=1"),
            {"connection-setup-tax": "db", "small-write-stall": "stall"},
            db_port=proxy[1],
            stall_port=app[1],
            stall_path="/plain/",
        )
    if name == "connect-tax":
        # A connect-level filter: connect() itself is held 200 ms before the handshake (the
        # diagnosing client's network holds it: no netem on loopback without root).
        app = stack.enter_context(waitress_server(hello))
        return Built(_url(app), {"connection-setup-tax": 200.0}, network={"connect_delay_s": 0.2})
    if name == "jitter-tax":
        # A tax that is not one number: uniform 50-350 ms per connection, no Server-Timing.
        rng = random.Random(7)
        app = stack.enter_context(waitress_server(hello))
        proxy = stack.enter_context(
            ghosts.tax_proxy(app, accept_delay_s=lambda _: rng.uniform(0.05, 0.35))
        )
        # The truth: the distribution's median (a run's cold series samples a few of them).
        return Built(_url(proxy), {"connection-setup-tax": 200.0})
    if name == "sometimes-tax":
        # 300 ms on one new connection in three (inject's every=3), Django with Server-Timing.
        app = stack.enter_context(waitress_server(_django({})))
        inj = stack.enter_context(_taxed(app, 300.0, ",every=3"))
        return Built(_url(inj.address, "/plain/"), {"connection-setup-tax": "tax"}, proxy=inj)
    if name == "slowsql":
        # A fast view whose one query takes 150 ms (pg_sleep), persistent connections.
        app = stack.enter_context(waitress_server(_django({"pg": _pg_alias(pg_port, None)})))
        return Built(_url(app, "/slowsql/pg/?s=0.15"), {"slow-app": 150.0})
    if name == "inspect-size":
        # Inspection in proportion to the body: 100 ms per MB on every response chunk, on a
        # ~1 MB JSON response (Server-Timing on).
        app = stack.enter_context(waitress_server(_django({})))
        proxy = stack.enter_context(ghosts.tax_proxy(app, response_s_per_mb=0.1))
        return Built(
            _url(proxy, "/big/?kb=1000"), {"outside-app-every-request": "applied"}, ghost=proxy
        )
    if name == "nagle-tax":
        port = stack.enter_context(badservers.serve(badservers.nagle_split))
        inj = stack.enter_context(_taxed(("127.0.0.1", port), 100.0))
        return Built(
            _url(inj.address),
            {"connection-setup-tax": "tax", "small-write-stall": "stall"},
            proxy=inj,
            stall_port=port,
        )
    if name == "dns-tax":
        app = stack.enter_context(waitress_server(hello))
        inj = stack.enter_context(_taxed(app, 100.0))
        dns_port = stack.enter_context(ghosts.dns_server({"app.test": ["127.0.0.1"]}, 0.25))
        return Built(
            f"http://app.test:{inj.address[1]}/",
            {"slow-name-resolution": "applied", "connection-setup-tax": "tax"},
            network={"dns_port": int(dns_port)},
            ghost=dns_port,
            proxy=inj,
        )
    if name == "errclose-tax":
        # Keep-alive on the page, Connection: close on every error response, 60 ms tax.
        port = stack.enter_context(badservers.serve(badservers.closes_on_errors()))
        inj = stack.enter_context(_taxed(("127.0.0.1", port), 60.0))
        return Built(_url(inj.address), {"connection-setup-tax": "tax"}, proxy=inj)
    if name == "sometimes-closer":
        # A server that closes every connection, no Server-Timing, and 300 ms on one new
        # connection in three: keep-alive would save 100 ms per request on average.
        port = stack.enter_context(badservers.serve(badservers.refuses_keepalive))
        proxy = stack.enter_context(
            ghosts.tax_proxy(
                ("127.0.0.1", port), accept_delay_s=lambda n: 0.3 if n % 3 == 0 else 0.0
            )
        )
        return Built(
            _url(proxy),
            {"connection-setup-tax": "applied", "keepalive-refused": 100.0},
            ghost=proxy,
        )
    if name == "http10-tax":
        # HTTP/1.0 responses with Connection: keep-alive (browsers and urllib3 reuse the
        # connection), 100 ms tax on new connections.
        port = stack.enter_context(badservers.serve(badservers.http10_keepalive))
        inj = stack.enter_context(_taxed(("127.0.0.1", port), 100.0))
        return Built(_url(inj.address), {"connection-setup-tax": "tax"}, proxy=inj)
    if name == "db-recycle":
        # Persistent database connections that live 1 s (CONN_MAX_AGE=1), 200 ms DB tax:
        # a connect every second per thread, whatever the HTTP connection.
        inj = stack.enter_context(_taxed(("127.0.0.1", pg_port), 200.0))
        app = stack.enter_context(
            waitress_server(_django({"recycle": _pg_alias(inj.address[1], 1)}))
        )
        return Built(
            _url(app, "/db/recycle/?n=1"),
            {"db-connect-slow": "db"},
            proxy=inj,
            db_port=inj.address[1],
        )
    raise SystemExit(f"unknown scenario {name!r}")


def child_stack(name: str, pg_port: int) -> None:
    # waitress logs every queued task at WARNING ("Task queue depth"); the queueing
    # scenario and the concurrency ladder make many of them.
    logging.getLogger("waitress").setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack:
        built = build_stack(name, stack, pg_port)
        _emit({"ready": True})
        for line in sys.stdin:
            command = line.strip()
            if command == "next":
                _emit(built.prepare())
            elif command == "truth":
                _emit(built.truth())
            else:
                _emit({"error": f"unknown command {command!r}"})


# --------------------------------------------------------------------------- parent side


class StackChild:
    """A ``_stack`` child process: the line protocol, every wait bounded."""

    def __init__(self, name: str, pg_port: int) -> None:
        self.name = name
        self._lines: queue.Queue[str | None] = queue.Queue()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, str(Path(__file__).resolve()), "_stack", name, str(pg_port)]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._answer()  # the ready line

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(PROTOCOL_PREFIX):
                self._lines.put(line[len(PROTOCOL_PREFIX) :])
        self._lines.put(None)

    def _answer(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=CHILD_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"stack {self.name}: no answer in {CHILD_TIMEOUT_S} s") from None
        if line is None:
            raise RuntimeError(f"stack {self.name}: the child exited ({self._proc.wait(10)})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._reader.join(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> StackChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Scenario:
    name: str
    title: str
    needs: str = ""  # "postgres" or "nginx": skipped when missing


SCENARIOS = [
    Scenario("tax100", "connection tax 100 ms in front of waitress"),
    Scenario("tax200", "connection tax 200 ms in front of waitress"),
    Scenario("tax300", "connection tax 300 ms in front of waitress"),
    Scenario("tax15.6", "connection tax 15.6 ms (a Windows timer tick) in front of waitress"),
    Scenario("tax35", "connection tax 35 ms (near the delayed-ACK stall) in front of waitress"),
    Scenario("tax1500", "connection tax 1500 ms in front of waitress"),
    Scenario(
        "cma0-tax",
        "100 ms tax on new client connections and CONN_MAX_AGE=0 behind a 100 ms DB tax",
        "postgres",
    ),
    Scenario(
        "nginx-tax",
        "100 ms tax in front of nginx without upstream keep-alive, 150 ms tax on the app hop",
        "nginx",
    ),
    Scenario("slowview-tax", "Django view sleeping 150 ms behind a 100 ms connection tax"),
    Scenario("limit-tax", "keep-alive for 3 responses (then Connection: close), 60 ms tax"),
    Scenario("idle-tax", "idle connections closed after 0.3 s without a word, 60 ms tax"),
    Scenario(
        "nocommon-tax",
        "Django without CommonMiddleware on waitress (closes every connection), 100 ms tax",
    ),
    Scenario("nginx", "nginx without upstream keep-alive, 200 ms tax on the app hop", "nginx"),
    Scenario("cma0", "Django CONN_MAX_AGE=0 on PostgreSQL, 200 ms tax on the DB hop", "postgres"),
    Scenario(
        "warmup",
        "Django persistent connections, no prewarm, 200 ms DB tax, 4 threads",
        "postgres",
    ),
    Scenario("slowview", "Django view sleeping 200 ms"),
    Scenario("nagle", "headers and body in two writes, Nagle on"),
    Scenario("queueing", "waitress threads=1, 100 ms view"),
    Scenario("localhost", "localhost resolving to ::1 first (--resolve), 127.0.0.1 only"),
    Scenario("blackhole", "localhost resolving to ::1 first, ::1 dropping connects"),
    Scenario("closer", "server closing every connection, no Server-Timing, 60 ms tax at accept"),
    Scenario(
        "closer-stream",
        "server closing every connection, no Server-Timing, 60 ms tax on the first bytes",
    ),
    Scenario("outside", "every response held 80 ms outside the app (reused connections too)"),
    Scenario("dns", "a name answered by DNS after 250 ms"),
    Scenario("runserver", "Django's runserver (two writes, no TCP_NODELAY)"),
    Scenario(
        "runserver-pg",
        "Django's runserver, persistent connections: a DB connect per new connection",
        "postgres",
    ),
    Scenario("connect-tax", "connect() held 200 ms before the handshake (a connect filter)"),
    Scenario("jitter-tax", "connection tax uniform 50-350 ms, no Server-Timing"),
    Scenario("sometimes-tax", "300 ms tax on one connection in three, Django"),
    Scenario("slowsql", "fast Django view, one 150 ms SQL query (pg_sleep)", "postgres"),
    Scenario("inspect-size", "each response held 100 ms per MB (1 MB JSON), Django"),
    Scenario("nagle-tax", "headers and body in two writes, Nagle on, behind a 100 ms tax"),
    Scenario("dns-tax", "a name answered by DNS after 250 ms, 100 ms connection tax"),
    Scenario("errclose-tax", "Connection: close on error responses only, 60 ms tax"),
    Scenario("http10-tax", "HTTP/1.0 responses with Connection: keep-alive, 100 ms tax"),
    Scenario(
        "sometimes-closer",
        "server closing every connection, no Server-Timing, 300 ms tax on one in three",
    ),
    Scenario("db-recycle", "CONN_MAX_AGE=1 (a DB connect every second), 200 ms DB tax", "postgres"),
]


@dataclass
class AccuracyRun:
    mode: str
    truths: dict[str, float | None]
    costs: dict[str, float | None]
    unexpected: list[str]
    duration_s: float
    taxed_connections: int


def _within(cost: float | None, truth: float | None) -> bool:
    if cost is None or truth is None:
        return False
    return abs(cost - truth) <= max(TOLERANCE_MS, TOLERANCE_REL * truth)


def accuracy(scenario: Scenario, pg_port: int, runs: int) -> list[AccuracyRun]:
    from lagscope.diagnose import run

    results: list[AccuracyRun] = []
    with StackChild(scenario.name, pg_port) as child:
        for k in range(2 * runs):
            # Pairs of runs, quick first in one pair and default first in the next.
            quick = (k % 2 == 0) != ((k // 2) % 2 == 1)
            plan = child.ask("next")
            t0 = time.perf_counter()
            report = run(
                plan["url"],
                resolve=plan["resolve"],
                quick=quick,
                network=_network(plan["network"]),
                **({"timeout_s": plan["timeout_s"]} if plan["timeout_s"] else {}),
            )
            duration_s = time.perf_counter() - t0
            truth = child.ask("truth")
            truths: dict[str, float | None] = truth["truths"]
            problems = {f.id: f for f in report.problems}
            costs = {fid: (f.cost_ms if (f := problems.get(fid)) else None) for fid in truths}
            results.append(
                AccuracyRun(
                    mode="quick" if quick else "default",
                    truths=truths,
                    costs=costs,
                    unexpected=sorted(set(problems) - set(truths)),
                    duration_s=duration_s,
                    taxed_connections=int(truth["taxed_connections"]),
                )
            )
            print(
                f"  {scenario.name} {results[-1].mode}: {duration_s:.1f} s, "
                f"costs {costs}, truths {truths}",
                file=sys.stderr,
            )
            _log_problems([problems[u] for u in results[-1].unexpected])
            for b in report.budgets:
                items = ", ".join(f"{i.name} {i.ms:.0f}" for i in b.items if i.within is None)
                print(f"    {b.kind} budget {b.total_ms:.0f} ms: {items}", file=sys.stderr)
    return results


def _network(spec: dict[str, Any] | None) -> Any:
    """The diagnosing client's resolver for a stack that names one, else the system's."""
    from support import ghosts

    if spec is None:
        return None
    if "hosts" in spec:
        return ghosts.HostsNetwork(spec["hosts"])
    if "connect_delay_s" in spec:
        return ghosts.SlowConnectNetwork(float(spec["connect_delay_s"]))
    return ghosts.DnsNetwork(int(spec["dns_port"]))


def _log_problems(findings: Iterable[Any]) -> None:
    """Unexpected findings with their evidence, on stderr, for whoever reads the run."""
    for f in findings:
        figures = ", ".join(f"{e.name}={e.value}" for e in f.evidence)
        print(f"    unexpected {f.id} ({f.severity}, {f.cost_ms} ms): {figures}", file=sys.stderr)
        print(f"      {f.detail}", file=sys.stderr)


@dataclass
class WallRun:
    app: str
    kind: str  # "process" or "in process"
    mode: str  # "default" or "quick"
    seconds: float
    problems: list[str]
    exit_code: int | None = None


def _wall_once(app: str, url: str, kind: str, quick: bool) -> WallRun:
    from lagscope.diagnose import run

    mode = "quick" if quick else "default"
    if kind == "process":
        with tempfile.TemporaryDirectory(prefix="lagscope-bench-diagnose-") as tmp:
            saved = Path(tmp) / "report.json"
            cmd = [sys.executable, "-m", "lagscope", "diagnose", url, "-o", str(saved)]
            t0 = time.perf_counter()
            done = subprocess.run(
                [*cmd, *(["--quick"] if quick else [])],
                capture_output=True,
                text=True,
                timeout=SUBPROCESS_TIMEOUT_S,
                check=False,
            )
            seconds = time.perf_counter() - t0
            findings = json.loads(saved.read_text(encoding="utf-8"))["findings"]
        problems = [f["id"] for f in findings if f["severity"] != "info"]
        if done.returncode not in (0, 1) or (done.returncode == 1) != bool(problems):
            problems.append(f"exit {done.returncode}")
        for f in findings:
            if f["severity"] != "info":
                print(f"    unexpected {f['id']}: {f.get('detail', '')}", file=sys.stderr)
        return WallRun(app, kind, mode, seconds, problems, done.returncode)
    t0 = time.perf_counter()
    report = run(url, quick=quick)
    seconds = time.perf_counter() - t0
    _log_problems(report.problems)
    return WallRun(app, kind, mode, seconds, [f.id for f in report.problems])


def wall_times(app: str, url: str, reps: int) -> list[WallRun]:
    kinds = [(k, q) for k in ("process", "in process") for q in (False, True)]
    results = []
    for rep in range(reps):
        # Rotate the order every round: this VM's CPU speed changes every few seconds.
        order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
        for kind, quick in order:
            results.append(_wall_once(app, url, kind, quick))
            r = results[-1]
            print(f"  {app} {kind} {r.mode}: {r.seconds:.2f} s {r.problems}", file=sys.stderr)
    return results


@contextlib.contextmanager
def demo_app() -> Iterator[str]:
    from lagscope.serve.process import ServeProcess

    with tempfile.TemporaryDirectory(prefix="lagscope-bench-demo-") as tmp:
        db = Path(tmp) / "demo.sqlite3"
        with ServeProcess(["--demo", "--port", "0", "--database", f"sqlite:///{db}"]) as proc:
            yield proc.url.rstrip("/") + "/api/items/"


# --------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _err(cost: float | None, truth: float | None) -> str:
    if cost is None or truth is None:
        return "—"
    if truth < 2 * TOLERANCE_MS:  # a near-zero truth: the error in ms says more than %
        return f"{cost - truth:+.1f} ms"
    return f"{100 * (cost - truth) / truth:+.0f} %"


def render_wall(results: list[WallRun], reps: int) -> list[str]:
    out = [
        f"Wall time, seconds, {reps} repetitions each, the four kinds interleaved "
        "(min / median / max). Targets: default <= 10 s, --quick <= 3 s.\n",
        "| app | how | mode | min | median | max | target met | warning-or-worse findings |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys: list[tuple[str, str, str]] = []
    for r in results:
        if (r.app, r.kind, r.mode) not in keys:
            keys.append((r.app, r.kind, r.mode))
    for app, kind, mode in keys:
        rows = [r for r in results if (r.app, r.kind, r.mode) == (app, kind, mode)]
        secs = [r.seconds for r in rows]
        target = 3.0 if mode == "quick" else 10.0
        ids = sorted({p for r in rows for p in r.problems})
        flagged = [f"{p} ({sum(p in r.problems for r in rows)}/{len(rows)})" for p in ids]
        how = "`python -m lagscope diagnose URL -o F`" if kind == "process" else "`run()`"
        out.append(
            f"| {app} | {how} | {mode} | {min(secs):.2f} | {statistics.median(secs):.2f} "
            f"| {max(secs):.2f} | {'yes' if max(secs) <= target else 'NO'} "
            f"| {', '.join(flagged) or 'none'} |"
        )
    return out


def render_accuracy(table: list[tuple[Scenario, list[AccuracyRun]]], runs: int) -> list[str]:
    out = [
        f"Accuracy, {runs} runs per mode (default and --quick interleaved, in run order). "
        "Truth: the tax inject applied on the run's connections (median of its records), "
        "psycopg connects through the taxed hop (median of 6: 3 before the run, 3 after), the "
        "sleep, reused-connection responses of the stalling server timed with a plain socket "
        "(lower quartile of 8), refused connects to ::1, the delays the test forwarder or DNS "
        "server really applied (median), or the 2 s connect timeout a sequential client waits "
        "on an address that drops connects. "
        f"Pass: within ±{TOLERANCE_REL:.0%} or ±{TOLERANCE_MS:g} ms.\n",
        "| scenario | mode | expected finding | truth ms | reported cost_ms | error "
        "| pass | other warning-or-worse | run s (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, results in table:
        for mode in ("default", "quick"):
            rows = [r for r in results if r.mode == mode]
            if not rows:
                continue
            duration = statistics.median(r.duration_s for r in rows)
            unexpected = sorted({u for r in rows for u in r.unexpected})
            for finding_id in rows[0].truths:
                truths = [r.truths.get(finding_id) for r in rows]
                costs = [r.costs.get(finding_id) for r in rows]
                passed = sum(_within(c, t) for c, t in zip(costs, truths, strict=True))
                out.append(
                    f"| {scenario.title} | {mode} | `{finding_id}` "
                    f"| {' / '.join(_fmt(t) for t in truths)} "
                    f"| {' / '.join(_fmt(c) if c is not None else 'missing' for c in costs)} "
                    f"| {' / '.join(_err(c, t) for c, t in zip(costs, truths, strict=True))} "
                    f"| {passed}/{len(rows)} "
                    f"| {', '.join(f'`{u}`' for u in unexpected) or 'none'} | {duration:.1f} |"
                )
    return out


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs (nproc), {model}, "
        f"Python {platform.python_version()}"
    )


# --------------------------------------------------------------------------- main


def _available(needs: str) -> bool:
    if needs == "nginx":
        from support.nginx import nginx_bin

        return nginx_bin() is not None
    if needs == "postgres":
        from support.pg import find_pg_bin

        return find_pg_bin() is not None
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="accuracy runs per scenario and mode")
    ap.add_argument("--wall-reps", type=int, default=3, help="wall-time repetitions")
    ap.add_argument("--only", default="", help="comma-separated scenario names (or 'wall')")
    args = ap.parse_args()
    if not 1 <= args.runs <= 20 or not 1 <= args.wall_reps <= 50:
        raise SystemExit("--runs must be 1..20 and --wall-reps 1..50")
    only = {s for s in args.only.split(",") if s}
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    wall: list[WallRun] = []
    if not only or "wall" in only:
        with StackChild("hello", 0) as child:
            url = child.ask("next")["url"]
            wall += wall_times("WSGI hello on waitress", url, args.wall_reps)
        with demo_app() as url:
            wall += wall_times("`lagscope serve --demo` (SQLite), /api/items/", url, args.wall_reps)

    table: list[tuple[Scenario, list[AccuracyRun]]] = []
    skipped: list[str] = []
    cluster = None
    try:
        for scenario in chosen:
            if not _available(scenario.needs):
                skipped.append(f"{scenario.title} ({scenario.needs} not installed)")
                continue
            if scenario.needs == "postgres" and cluster is None:
                from support.pg import make_cluster

                cluster = make_cluster()
            pg_port = cluster.port if cluster is not None else 0
            table.append((scenario, accuracy(scenario, pg_port, args.runs)))
    finally:
        if cluster is not None:
            from support.pg import destroy_cluster

            destroy_cluster(cluster)

    elapsed_s = time.perf_counter() - started
    flags = []
    if args.runs != 3:
        flags.append(f"--runs {args.runs}")
    if args.wall_reps != 3:
        flags.append(f"--wall-reps {args.wall_reps}")
    if args.only:
        flags.append(f"--only {args.only}")
    out = [
        "## diagnose\n",
        "Command: `uv run --all-extras python bench/bench_diagnose.py"
        + "".join(" " + f for f in flags)
        + f"` ({elapsed_s:.0f} s in all)  ",
        f"Machine: {_machine()}, {time.strftime('%Y-%m-%d')}"
        + (f"; load average before the run {load_before[0]:.1f}" if load_before is not None else "")
        + "\n",
    ]
    if wall:
        out += [*render_wall(wall, args.wall_reps), ""]
    if table:
        out += [*render_accuracy(table, args.runs), ""]
    for s in skipped:
        out.append(f"Skipped: {s}.  ")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_stack":  # _stack SCENARIO PG_PORT
        child_stack(sys.argv[2], int(sys.argv[3]))
    else:
        main()

"""Run ``lagscope serve``: one waitress process, ``--workers N`` of them, or granian.

Owns the run of the command: start-up and stop reports, the stop signals (per platform,
from :mod:`lagscope.stopping`; handled with ``signal.signal`` while the loop wakes every
second, so Ctrl+C works on Windows too) and the choice of how to serve. The app is loaded
once here (:func:`lagscope.serve.app.load_app`); the waitress server itself is
:mod:`lagscope.serve.server`, the worker processes :mod:`lagscope.serve.workers`, and
granian's worker side :mod:`lagscope.serve.granian_entry`. The resolved ``ServeConfig``
travels one way from here: into the server, pickled to spawned workers, and as JSON to
granian's.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from lagscope.errors import ExitCode, LagscopeError
from lagscope.netutil import free_port
from lagscope.serve.app import AppSpec, LoadedApp, load_app
from lagscope.serve.database import PrewarmResult
from lagscope.serve.granian_entry import SPEC_ENV, URL_ENV, dump_spec
from lagscope.serve.server import LISTENING_PREFIX, open_listeners, start_waitress, url
from lagscope.serve.settings import ServeConfig
from lagscope.serve.tls import https_files
from lagscope.serve.tls_advice import granian_log_config
from lagscope.serve.workers import StartMethod, WorkerPool, default_start_method
from lagscope.stopping import graceful_signals, handle_stop_signals

__all__ = ["LISTENING_PREFIX", "run"]

Echo = Callable[[str], None]


def _echo_stdout(line: str) -> None:
    print(line, flush=True)


def _report_startup(loaded: LoadedApp, config: ServeConfig, echo: Echo) -> None:
    processes = f"{config.workers} workers x " if config.workers > 1 else ""
    echo(
        f"lagscope serve: {loaded.spec.describe()} on {config.server}, "
        f"{processes}{config.threads} threads"
    )
    for note in loaded.notes:
        echo(f"lagscope serve: {note}")
    for plan in loaded.plans:
        echo(f"lagscope serve: connections {plan.alias}: {plan.mode} ({plan.why})")


def _check_capacity(loaded: LoadedApp, config: ServeConfig, echo: Echo) -> None:
    if loaded.databases is not None:
        for note in loaded.databases.check_capacity(config.workers):
            echo(f"lagscope serve: {note}")


def _report_prewarm(results: list[PrewarmResult], config: ServeConfig, echo: Echo) -> None:
    if not config.prewarm:
        echo("lagscope serve: prewarm off: the first request on each thread pays a connect")
    for r in results:
        echo(f"lagscope serve: prewarmed {r.what} in {r.elapsed_ms:.1f} ms")


def _report_stop(
    in_flight: int, finished: int, abandoned: int, shutdown_timeout_s: float, echo: Echo
) -> None:
    if in_flight == 0:
        echo("lagscope serve: stopped (no request was in flight)")
    elif abandoned == 0:
        echo(f"lagscope serve: stopped ({in_flight} request(s) were in flight, all finished)")
    else:
        echo(
            f"lagscope serve: stopped ({in_flight} request(s) were in flight: "
            f"{finished} finished, {abandoned} abandoned after --shutdown-timeout "
            f"{shutdown_timeout_s:g} s, their connections closed without a complete response)"
        )


def run(
    spec: AppSpec,
    config: ServeConfig,
    echo: Echo = _echo_stdout,
    stop_signals: tuple[int, ...] | None = None,
    start_method: StartMethod | None = None,
) -> int:
    """Serve until a stop signal; returns the exit code (0 after a graceful stop).

    ``stop_signals`` defaults to :func:`lagscope.stopping.graceful_signals` (SIGINT and
    SIGTERM on POSIX, SIGINT and SIGBREAK on Windows). ``start_method`` picks how
    ``--workers`` > 1 start (default: fork on POSIX, spawn on Windows)."""
    if config.server == "granian":
        return _run_granian(spec, config, echo)
    signals = graceful_signals() if stop_signals is None else stop_signals
    if config.workers > 1:
        return _run_workers(spec, config, echo, signals, start_method or default_start_method())
    loaded = load_app(spec, config)
    _report_startup(loaded, config, echo)
    _check_capacity(loaded, config, echo)
    aborted = False
    try:
        ws = start_waitress(loaded, config)
        _report_prewarm(ws.prewarmed, config, echo)
        echo(LISTENING_PREFIX + " ".join(ws.urls))

        def graceful(signum: int) -> None:
            echo(f"lagscope serve: {_signal_name(signum)}, finishing in-flight requests")
            ws.stop()

        with handle_stop_signals(
            graceful, signals, wait_stopped=ws.wait_stopped, on_duplicate=_said_again(echo)
        ):
            try:
                ws.serve()
            except KeyboardInterrupt:
                aborted = True
                echo(
                    f"lagscope serve: second signal, stopped without waiting "
                    f"({ws.abandoned} request(s) abandoned)"
                )
                return int(ExitCode.INTERRUPTED)
        _report_stop(ws.in_flight_at_stop, ws.finished, ws.abandoned, ws.shutdown_timeout_s, echo)
        return 0
    finally:
        # After an immediate stop a worker thread may still be inside the app: leave the
        # pools to the process exit rather than wait on them.
        if loaded.databases is not None and not aborted:
            loaded.databases.shutdown()


def _run_workers(
    spec: AppSpec,
    config: ServeConfig,
    echo: Echo,
    signals: tuple[int, ...],
    start_method: StartMethod,
) -> int:
    """The parent of ``--workers N``: load once, listen once, start and watch the workers."""
    loaded = load_app(spec, config)
    _report_startup(loaded, config, echo)
    _check_capacity(loaded, config, echo)
    socks = open_listeners(config.listen_hosts, config.port, config.backlog)
    port = int(socks[0].getsockname()[1])
    urls = [url(s.getsockname()[0], port) for s in socks]
    pool = WorkerPool(spec, config, loaded, socks, echo, start_method)
    stopping = threading.Event()
    stopped = threading.Event()
    try:
        # Each worker prewarms its own connections; the app import and the migrate already
        # happened here, so this covers the prewarm (plus a spawned worker's imports).
        pool.start_all(timeout_s=config.prewarm_timeout + 60)
        for worker in sorted(pool.workers.values(), key=lambda w: w.index):
            done = (
                "; ".join(f"{r.what} in {r.elapsed_ms:.1f} ms" for r in worker.prewarmed)
                or "nothing to prewarm"
            )
            echo(f"lagscope serve: worker {worker.index} (pid {worker.pid}) prewarmed {done}")
        if not config.prewarm:
            echo("lagscope serve: prewarm off: the first request on each thread pays a connect")
        echo(LISTENING_PREFIX + " ".join(urls))

        def graceful(signum: int) -> None:
            echo(
                f"lagscope serve: {_signal_name(signum)}, finishing in-flight requests in "
                f"{len(pool.workers)} workers"
            )
            stopping.set()

        with handle_stop_signals(
            graceful, signals, wait_stopped=stopped.wait, on_duplicate=_said_again(echo)
        ):
            try:
                pool.watch(stopping)
                in_flight, finished, abandoned = pool.stop_all(config.shutdown_timeout + 10)
            except KeyboardInterrupt:
                pool.kill_all()
                echo("lagscope serve: second signal, workers killed without waiting")
                return int(ExitCode.INTERRUPTED)
        _report_stop(in_flight, finished, abandoned, config.shutdown_timeout, echo)
        return 0
    except BaseException:
        pool.kill_all()  # never leave workers behind a parent that failed
        raise
    finally:
        stopped.set()
        for s in socks:
            s.close()


def _said_again(echo: Echo) -> Callable[[int], None]:
    """What serve prints for a copy of the first stop signal (the same stop, not a second)."""

    def duplicate(signum: int) -> None:
        echo(f"lagscope serve: {_signal_name(signum)} again within 1 s, taken as the same stop")

    return duplicate


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# ------------------------------------------------------------------------------ granian


def _run_granian(spec: AppSpec, config: ServeConfig, echo: Echo) -> int:
    try:
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, SSLProtocols
    except ImportError as exc:
        raise LagscopeError(
            "config",
            "--server granian needs the granian extra (pip install 'lagscope[granian]')",
            ExitCode.USAGE,
        ) from exc
    # granian binds one address; `localhost` means 127.0.0.1 there (documented gap).
    host = "127.0.0.1" if config.host == "localhost" else config.host
    if config.port:
        # granian binds its own socket with SO_REUSEPORT: on a port another process
        # listens on it would start anyway and the kernel would split the connections
        # between the two. Bind it first as waitress does (SO_REUSEADDR only on POSIX,
        # SO_EXCLUSIVEADDRUSE on Windows), so it fails the same way; port 0 needs no check.
        for sock in open_listeners((host,), config.port, config.backlog):
            sock.close()
    port = config.port or free_port(host)
    # granian's workers are separate processes that import the entry module and load the
    # app themselves; the environment is what reaches them, so the spec and the config
    # resolved here go there (as JSON), not re-resolved in each worker.
    os.environ[SPEC_ENV] = dump_spec(spec, config)
    served_url = url(host, port, "https" if config.https else "http")
    os.environ[URL_ENV] = served_url
    processes = f"{config.workers} workers x " if config.workers > 1 else ""
    echo(
        f"lagscope serve: {spec.describe()} on granian, {processes}{config.threads} "
        "blocking threads"
    )
    tls_files = https_files(config, echo) if config.https else None

    # granian.Granian is whichever server class the interpreter gets (typed as a variable).
    granian_server: Any = Granian

    class _Server(granian_server):  # type: ignore[misc]
        """granian, with SIGHUP (the terminal closed) a stop as SIGTERM is: granian's own
        SIGHUP respawns the workers, so serve outlived its terminal, and a stop arriving
        during the respawn (a demo stopped by a signal to its group) left a worker that
        nobody stopped, still listening."""

        def signal_handler_reload(self, *args: object, **kwargs: object) -> None:
            self.signal_handler_interrupt(*args, **kwargs)

    server = _Server(
        "lagscope.serve.granian_entry:create_app",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=config.workers,
        blocking_threads=config.threads,
        backlog=config.backlog,
        factory=True,
        log_access=False,
        # granian's logging, plus a line when a plain http:// request hits the TLS port.
        log_dictconfig=(
            granian_log_config(served_url, tls_files.local_ca_names) if tls_files else None
        ),
        # auto: HTTP/1.1 on plain TCP; with TLS, ALPN offers h2 and http/1.1.
        http=HTTPModes.auto,
        ssl_cert=tls_files.cert if tls_files else None,
        ssl_key=tls_files.key if tls_files else None,
        # TLS 1.2 too: Windows 10's Schannel clients (curl.exe, .NET Framework) lack 1.3.
        ssl_protocol_min=SSLProtocols.tls12,
        # A worker with an HTTP/2 connection open when the stop signal arrives (a browser
        # tab) never finishes its graceful stop, even once the client has gone (granian
        # #611): the master kills it after --shutdown-timeout, as waitress abandons what
        # is still running then. granian takes whole seconds, and 0 means "never".
        workers_kill_timeout=max(1, math.ceil(config.shutdown_timeout)),
    )
    server.serve()
    return 0

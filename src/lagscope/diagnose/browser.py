"""The ``browser`` rung of diagnose (``--browser``): a real browser loads the URL.

:class:`BrowserAsk` is what the user asked for (a browser path, an idle reload);
:func:`check_browser` finds the browser before anything is measured, so a machine without
one fails at once in one line (exit 8); :func:`run_browser` loads the page through
:mod:`lagscope.browser` inside what is left of the run's time; :func:`rung_figures` (pure)
says what the rung shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from lagscope.browser.locate import BrowserChoice
from lagscope.browser.model import BrowserRun, setup_ms
from lagscope.diagnose.model import Figure

__all__ = ["BrowserAsk", "check_browser", "run_browser", "rung_figures", "server_spki"]

# Launching the browser and its driver takes ~1-2 s on a slow machine; less than this left
# in the run is not enough for a cold load and a reload.
_MIN_LEFT_S = 3.0
# A page load may take long on a taxed stack, but never the whole run.
_LOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BrowserAsk:
    """``--browser`` with its ``--browser-path`` and ``--browser-idle``."""

    path: str | None = None
    idle_s: float | None = None


def check_browser(ask: BrowserAsk) -> BrowserChoice:
    """The browser to drive, or a one-line LagscopeError (exit 8) saying how to get one:
    checked before the ladder starts."""
    from lagscope.browser.driver import check_ready

    return check_ready(ask.path)


def server_spki(url: str, cafile: str, timeout_s: float) -> str:
    """The base64 SHA-256 hash of the public key ``url``'s server presents, its certificate
    verified against ``cafile`` (one TLS handshake): what the browser then accepts, so
    ``--cacert`` means the same to it as to the other rungs, with nothing installed."""
    import socket
    import ssl

    from cryptography import x509

    from lagscope.cert.authority import spki_sha256_b64

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    context = ssl.create_default_context(cafile=cafile)
    with (
        socket.create_connection((host, parts.port or 443), timeout=timeout_s) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return spki_sha256_b64(x509.load_der_x509_certificate(der))


def run_browser(
    url: str,
    choice: BrowserChoice,
    ask: BrowserAsk,
    left_s: float,
    timeout_s: float,
    insecure: bool,
    sleep: Callable[[float], None],
    cafile: str | None = None,
) -> tuple[BrowserRun | None, list[str]]:
    """A visit within ``left_s`` seconds of the run; the run and the notes on what did not
    fit (None when nothing did). With ``cafile`` (``--cacert``) on an https URL the browser
    accepts the server's key once it is verified against that CA (:func:`server_spki`)."""
    from lagscope.browser.driver import BrowserSession

    notes: list[str] = []
    trusted: tuple[str, ...] = ()
    if cafile is not None and not insecure and urlsplit(url).scheme == "https":
        try:
            trusted = (server_spki(url, cafile, min(timeout_s, left_s)),)
        except (OSError, ImportError) as exc:  # ssl.SSLError is an OSError
            notes.append(f"the server's key for the browser to trust, from --cacert: {exc}")
    if left_s < _MIN_LEFT_S:
        return None, [f"{left_s:.1f} s of --max-time left: too little for the browser"]
    idle = ask.idle_s
    if idle is not None and idle > left_s - _MIN_LEFT_S:
        notes.append(f"no reload after {idle:g} s idle: it does not fit what is left of --max-time")
        idle = None
    budget_s = max(1.0, min(_LOAD_TIMEOUT_S, max(timeout_s, 10.0), left_s - (idle or 0.0)))
    with BrowserSession(choice, budget_s, sleep, trusted_spki=trusted) as session:
        run = session.visit(url, idle_s=idle, ignore_https_errors=insecure)
    return run, notes


def rung_figures(run: BrowserRun) -> list[Figure]:
    """What the rung shows: per load its time and the connections it opened, and what
    the cold load's new connections added to it."""
    figures = [Figure("browser", run.browser), Figure("found_by", run.source)]
    for load in run.loads:
        key = load.label.replace(" ", "_")
        figures.append(Figure(f"{key}_load_ms", load.load_ms, "ms"))
        figures.append(Figure(f"{key}_requests", len(load.resources)))
        figures.append(Figure(f"{key}_connections_opened", load.new_connections))
        if load.label == "cold":
            setup = setup_ms(load, run.loads)
            figures.append(Figure("cold_setup_added_ms", setup.added_ms, "ms"))
            figures.append(Figure("per_connection_setup_ms", setup.per_connection_ms, "ms"))
            protocols = sorted({r.protocol for r in load.resources if r.protocol})
            figures.append(Figure("protocol", ", ".join(protocols) or None))
    return figures

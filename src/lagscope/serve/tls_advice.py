"""What ``serve --https`` says on its console when a client's TLS handshake fails in a way
the user can fix: a plain ``http://`` request on the TLS port, or a browser that does not
trust the certificate.

granian accepts and does the handshake in Rust: a plain HTTP request gets a TLS alert
(curl: "Received HTTP/0.9", Chromium: ``ERR_INVALID_HTTP_RESPONSE``) and the connection is
closed before anything of lagscope's sees it, so there is no redirect to give (docs/https.md).
What granian does do is log every failed handshake, at debug level on the
``_granian.workers`` logger (its ``log`` records reach Python's logging through pyo3-log)::

    TCP handshake failed with error: TlsAcceptError { error: Custom { kind: InvalidData,
    error: InvalidMessage(InvalidContentType) }, peer_addr: 127.0.0.1:56768 }

:func:`granian_log_config` is granian's own logging config with that one logger at debug
level and :class:`HandshakeAdvice` on it. That logger has no other debug record, and every
other logger keeps its level, so a request or a handshake that succeeds costs nothing more
(measured: docs/performance.md). :func:`classify` (pure) reads the failure from the
message: plain text where a TLS record should start (``InvalidContentType``: an HTTP
method's first letter is no TLS record type), or the client's certificate alert;
a closed or silent connection (serve's own readiness check, a browser's preconnect) says
nothing. Each worker process prints at most one line per kind per :data:`WINDOW_S`, the
first at once, with the count of those held back since; control characters escaped.
Checked against granian 2.8.7's message; another wording gives no line, never a wrong one.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from lagscope.console import printable

__all__ = [
    "GRANIAN_LOGGER",
    "WINDOW_S",
    "HandshakeAdvice",
    "HandshakeFailure",
    "Throttle",
    "advice_line",
    "classify",
    "granian_log_config",
]

GRANIAN_LOGGER = "_granian.workers"  # pyo3-log's name for granian's src/workers.rs
WINDOW_S = 10.0

Kind = Literal["plain-http", "untrusted"]

_ANY_ADDRESS = frozenset({"0.0.0.0", "::"})  # serve --host 0.0.0.0: every address of ours
_PEER = re.compile(r"peer_addr: ([^\s{},]+)")
_ALERT = re.compile(r"AlertReceived\((UnknownCA|CertificateUnknown|BadCertificate)\)")


@dataclass(frozen=True)
class HandshakeFailure:
    kind: Kind
    peer: str  # "127.0.0.1:56768" as granian wrote it, "" when it did not
    detail: str = ""  # the client's alert, for "untrusted"


def classify(message: str) -> HandshakeFailure | None:
    """The failure a user can act on in one of granian's handshake-failure messages."""
    if "TlsAcceptError" not in message:
        return None
    found = _PEER.search(message)
    peer = found.group(1) if found else ""
    if "InvalidMessage(InvalidContentType)" in message:
        return HandshakeFailure("plain-http", peer)
    alert = _ALERT.search(message)
    if alert:
        return HandshakeFailure("untrusted", peer, alert.group(1))
    return None


def advice_line(
    failure: HandshakeFailure, url: str, local_ca_names: tuple[str, ...], held: int
) -> str:
    """The console line for ``failure`` on the server at ``url``; ``local_ca_names``: what
    the local CA's certificate covers (empty: ``--tls-cert-file``'s); ``held``: lines of
    this kind held back since the last one."""
    source = f" from {failure.peer}" if failure.peer else ""
    more = f" ({held} more since the last such line)" if held else ""
    if failure.kind == "plain-http":
        parts = urlsplit(url)
        where = (
            f"the same address over https:// (port {parts.port})"
            if parts.hostname in _ANY_ADDRESS  # the client's address for us is unknown here
            else f"{url}/"
        )
        return (
            f"lagscope serve: a plain http:// request reached this TLS-only port{source}"
            f"{more}; it got a TLS alert, not HTTP: open {where} instead"
        )
    fix = (
        "a browser trusts lagscope's local CA once `lagscope cert install` has run "
        "(`lagscope cert status` says where it is trusted), and the certificate only for "
        + ", ".join(local_ca_names)
        if local_ca_names
        else "the client does not trust the --tls-cert-file certificate for the name it used"
    )
    return (
        f"lagscope serve: a client{source} refused the TLS certificate "
        f"({failure.detail}){more}: {fix}"
    )


@dataclass
class Throttle:
    """At most one line per kind per ``window_s``: the first at once; later ones within the
    window are counted, and the next one after it carries the count."""

    window_s: float = WINDOW_S
    _last_s: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, kind: str, now_s: float) -> int | None:
        """None: hold this one back; otherwise print it, with this many held before it."""
        last = self._last_s.get(kind)
        if last is not None and now_s - last < self.window_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last_s[kind] = now_s
        return self._held.pop(kind, 0)


class HandshakeAdvice(logging.Handler):
    """The handler on granian's worker logger, made by ``logging.config`` in each worker
    process (``()`` in :func:`granian_log_config`); writes to the worker's stderr, which is
    serve's. ``logging.Handler.handle`` holds the handler's lock around :meth:`emit`."""

    def __init__(
        self,
        url: str,
        local_ca_names: tuple[str, ...],
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(logging.DEBUG)
        self.url = url
        self.local_ca_names = tuple(local_ca_names)
        self.clock = clock
        self.stream = stream
        self.throttle = Throttle(window_s)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            failure = classify(record.getMessage())
            if failure is None:
                return
            held = self.throttle.admit(failure.kind, self.clock())
            if held is None:
                return
            line = advice_line(failure, self.url, self.local_ca_names, held)
            stream = self.stream if self.stream is not None else sys.stderr
            stream.write(printable(line) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def granian_log_config(url: str, local_ca_names: tuple[str, ...]) -> dict[str, Any] | None:
    """granian's default logging config (``log_dictconfig``) plus :class:`HandshakeAdvice`
    on :data:`GRANIAN_LOGGER`, at debug level there only; None for a granian without that
    default (no advice then, the rest unchanged)."""
    try:
        from granian.log import LOGGING_CONFIG
    except ImportError:
        return None
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    handlers = config.get("handlers")
    loggers = config.get("loggers")
    if not isinstance(handlers, dict) or not isinstance(loggers, dict):
        return None
    if "console" not in handlers or "_granian" not in loggers:
        return None
    # Whatever else that logger says at info and above still reaches granian's console.
    handlers["lagscope_console_info"] = {**handlers["console"], "level": "INFO"}
    handlers["lagscope_tls_advice"] = {
        "()": f"{__name__}.{HandshakeAdvice.__qualname__}",
        "url": url,
        "local_ca_names": local_ca_names,
    }
    loggers[GRANIAN_LOGGER] = {
        "handlers": ["lagscope_console_info", "lagscope_tls_advice"],
        "level": "DEBUG",
        "propagate": False,
    }
    return config

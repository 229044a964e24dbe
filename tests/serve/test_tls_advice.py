"""The console line for a failed TLS handshake on ``serve --https``, from granian's own log
messages (as granian 2.8.7 wrote them here: tests/serve/test_serve_https.py runs the real
thing)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from lagscope.serve.tls_advice import (
    GRANIAN_LOGGER,
    HandshakeAdvice,
    HandshakeFailure,
    Throttle,
    advice_line,
    classify,
    granian_log_config,
)

_PREFIX = "TCP handshake failed with error: TlsAcceptError { error: Custom { kind: "
PLAIN = (
    _PREFIX + "InvalidData, error: InvalidMessage(InvalidContentType) }, "
    "peer_addr: 127.0.0.1:56768 }"
)
CHROMIUM_UNTRUSTED = (
    _PREFIX + "InvalidData, error: AlertReceived(CertificateUnknown) }, "
    "peer_addr: 127.0.0.1:56020 }"
)
CURL_UNTRUSTED = _PREFIX + "InvalidData, error: AlertReceived(UnknownCA) }, peer_addr: [::1]:4431 }"
EOF_ = _PREFIX + 'UnexpectedEof, error: "tls handshake eof" }, peer_addr: 127.0.0.1:56784 }'
URL = "https://127.0.0.1:8443"
NAMES = ("localhost", "127.0.0.1", "::1")


def test_classify_the_failures_a_user_can_act_on() -> None:
    assert classify(PLAIN) == HandshakeFailure("plain-http", "127.0.0.1:56768")
    assert classify(CHROMIUM_UNTRUSTED) == HandshakeFailure(
        "untrusted", "127.0.0.1:56020", "CertificateUnknown"
    )
    assert classify(CURL_UNTRUSTED) == HandshakeFailure("untrusted", "[::1]:4431", "UnknownCA")


@pytest.mark.parametrize(
    "message",
    [
        EOF_,  # serve's own readiness check, a browser's unused preconnect
        "TCP handshake failed with error: HandshakeTimeout { peer_addr: 127.0.0.1:1 }",
        "TCP handshake failed with error: ListenerError(Os { code: 24 })",
        "InvalidMessage(InvalidContentType) without the error it belongs to",
        _PREFIX + "InvalidData, error: AlertReceived(HandshakeFailure) }, peer_addr: 1.2.3.4:5 }",
    ],
)
def test_anything_else_says_nothing(message: str) -> None:
    assert classify(message) is None


def test_a_message_without_the_peer_still_gives_the_advice() -> None:
    failure = classify(PLAIN.replace(", peer_addr: 127.0.0.1:56768", ""))
    assert failure == HandshakeFailure("plain-http", "")
    line = advice_line(failure, URL, local_ca_names=NAMES, held=0)
    assert "port;" in line and " from " not in line


def test_advice_lines() -> None:
    plain = advice_line(HandshakeFailure("plain-http", "127.0.0.1:5"), URL, NAMES, 0)
    assert plain == (
        "lagscope serve: a plain http:// request reached this TLS-only port from "
        "127.0.0.1:5; it got a TLS alert, not HTTP: open https://127.0.0.1:8443/ instead"
    )
    anywhere = advice_line(HandshakeFailure("plain-http", ""), "https://0.0.0.0:8443", (), 0)
    assert anywhere.endswith("open the same address over https:// (port 8443) instead")
    v6 = advice_line(HandshakeFailure("plain-http", ""), "https://[::]:8443", (), 0)
    assert v6.endswith("open the same address over https:// (port 8443) instead")
    held = advice_line(HandshakeFailure("plain-http", "127.0.0.1:5"), URL, NAMES, 3)
    assert "from 127.0.0.1:5 (3 more since the last such line);" in held
    untrusted = HandshakeFailure("untrusted", "127.0.0.1:6", "UnknownCA")
    ours = advice_line(untrusted, URL, local_ca_names=NAMES, held=0)
    assert "refused the TLS certificate (UnknownCA)" in ours and "lagscope cert install" in ours
    assert ours.endswith("the certificate only for localhost, 127.0.0.1, ::1")
    given = advice_line(untrusted, URL, local_ca_names=(), held=0)
    assert "--tls-cert-file" in given and "cert install" not in given


def test_throttle_one_line_per_kind_per_window_then_the_count() -> None:
    t = Throttle(window_s=10.0)
    assert t.admit("plain-http", 100.0) == 0
    assert t.admit("plain-http", 101.0) is None
    assert t.admit("untrusted", 101.5) == 0  # a kind of its own
    assert t.admit("plain-http", 109.9) is None
    assert t.admit("plain-http", 110.0) == 2
    assert t.admit("plain-http", 111.0) is None
    assert t.admit("plain-http", 200.0) == 1


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(GRANIAN_LOGGER, logging.DEBUG, "workers.rs", 984, message, None, None)


def test_the_handler_writes_one_escaped_line_per_window() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = HandshakeAdvice(
        URL, local_ca_names=NAMES, window_s=10.0, clock=lambda: now[0], stream=out
    )
    hostile = PLAIN.replace("127.0.0.1:56768", "127.0.0.1:1\x1b]52;c;cHduZWQ=\x07")
    for message in (hostile, EOF_, PLAIN, PLAIN):
        handler.handle(_record(message))
        now[0] += 1.0
    now[0] = 20.0
    handler.handle(_record(PLAIN))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "127.0.0.1:1\\x1b]52;c;cHduZWQ=\\x07" in lines[0]
    assert "from 127.0.0.1:56768 (2 more since the last such line)" in lines[1]


def test_the_log_config_is_granians_plus_the_handler_on_one_logger() -> None:
    pytest.importorskip("granian")
    from granian.log import LOGGING_CONFIG as GRANIANS

    LOGGING_CONFIG: dict[str, Any] = GRANIANS
    config = granian_log_config(URL, local_ca_names=())
    assert config is not None
    assert config["loggers"]["_granian"] == LOGGING_CONFIG["loggers"]["_granian"]
    assert config["formatters"] == LOGGING_CONFIG["formatters"]
    ours = config["loggers"][GRANIAN_LOGGER]
    assert ours["level"] == "DEBUG" and ours["propagate"] is False
    handler = config["handlers"]["lagscope_tls_advice"]
    assert handler == {
        "()": "lagscope.serve.tls_advice.HandshakeAdvice",
        "url": URL,
        "local_ca_names": (),
    }
    # anything else granian says on that logger still reaches its console, at info and up
    assert config["handlers"]["lagscope_console_info"]["level"] == "INFO"
    assert "lagscope_tls_advice" not in LOGGING_CONFIG["handlers"]  # granian's copy untouched

"""What a client sends never reaches serve's terminal as a control sequence: waitress's
"Exception while serving <path>", the app's log records and an exception message quoting a
header all pass through console.printable (serve's stderr is a PrintableStream). A real
``lagscope serve`` on loopback, every C0 and C1 control, OSC 52 (clipboard) and DCS."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from lagscope.serve import ServeProcess

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals to the server")

_APP = """
import logging

def app(environ, start_response):
    path = environ["PATH_INFO"]
    logging.getLogger("hostile").warning("Not Found: %s (%s)", path, environ.get("HTTP_X_EVIL"))
    if path.startswith("/boom"):
        raise ValueError("bad header " + environ.get("HTTP_X_EVIL", ""))
    start_response("404 Not Found", [("Content-Length", "2")])
    return [b"no"]
"""

# Every control but NUL (which ends a C string in some loggers' paths), newline and tab
# (kept: a traceback's layout), in the order sent.
_C0 = [c for c in range(0x01, 0x20) if chr(c) not in "\n\t"] + [0x7F]
_C1 = list(range(0x80, 0xA0))
_OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
_DCS = "\x1bP1$r\x1b\\"


def _quoted(text: str) -> bytes:
    return "".join(f"%{b:02X}" for b in text.encode("utf-8")).encode("ascii")


def _send(port: int, target: bytes, header: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nX-Evil: " + header
            + b"\r\nConnection: close\r\n\r\n"
        )  # fmt: skip
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


@pytest.mark.parametrize(
    "extra", [[], ["--workers", "2"], ["--reload"]], ids=["one", "workers", "reload"]
)
def test_no_control_character_from_a_client_reaches_serves_output(
    tmp_path: Path, extra: list[str]
) -> None:
    (tmp_path / "hostile_log_app.py").write_text(_APP, encoding="utf-8")
    env = dict(os.environ, LAGSCOPE_DATA_DIR=str(tmp_path))
    args = ["hostile_log_app:app", "--port", "0", "--host", "127.0.0.1", *extra]
    proc = ServeProcess(args, env=env, cwd=str(tmp_path)).start()
    controls = "".join(map(chr, _C0 + _C1))
    try:
        # The path carries them percent-encoded (waitress decodes them into PATH_INFO); a
        # header value carries C1 as obs-text bytes (decoded as Latin-1).
        c1_bytes = bytes(_C1)
        assert b" 404 " in _send(port := proc.port, b"/log" + _quoted(controls + _OSC52), b"v")
        assert b" 500 " in _send(port, b"/boom" + _quoted(_DCS + controls), c1_bytes + b"[/]")
        deadline = time.monotonic() + 10
        while proc.output.count("Not Found") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the server's own output
    finally:
        proc.stop(timeout_s=30)
    out = proc.output
    assert "Exception while serving /boom" in out and "ValueError: bad header" in out, out
    raw = sorted(
        {
            f"{ord(c):#x}"
            for c in out
            if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0
        }
    )
    assert not raw, raw
    for code in _C0 + _C1:
        assert f"\\x{code:02x}" in out, hex(code)  # shown, escaped
    assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07" in out and "\\x1bP1$r\\x1b\\" in out
    assert "[/]" in out  # text, not markup

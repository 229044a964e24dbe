"""Headless Chromium driven over the DevTools protocol on a pipe, for checking HTML reports.

``--remote-debugging-pipe`` makes Chromium read protocol commands from fd 3 and write
replies and events to fd 4, each message JSON ended by a NUL byte; no port, no websocket
client. A shell ``exec`` puts our pipe ends on fds 3 and 4 (POSIX only, like the tests that
use it). :func:`open_page` loads a file and records what an honest "self-contained" check
needs: every request the page made (``Network.requestWillBeSent``), every console message
and uncaught exception, and every browser log entry (CSP violations land there). It can
then read the DOM text, take a screenshot and print to PDF.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

__all__ = ["CHROMIUM", "Page", "decode_png", "open_page"]

# The DevTools pipe is handed over as fds 3 and 4 through bash (POSIX only): on Windows the
# tests that need it skip as if chromium were missing.
CHROMIUM = (
    None
    if sys.platform == "win32"
    else shutil.which("chromium")
    or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class ProtocolError(Exception):
    pass


@dataclass
class Page:
    """One tab, attached through a flat session on the browser's pipe."""

    proc: subprocess.Popen[bytes]
    to_browser: int
    from_browser: int
    session: str = ""
    next_id: int = 0
    buffer: bytes = b""
    events: list[dict[str, Any]] = field(default_factory=list)

    # --- the wire ------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise ProtocolError("Chromium closed its pipe")
                self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
        browser: bool = False,
    ) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise ProtocolError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, timeout_s: float = 30.0) -> dict[str, Any]:
        for e in self.events:
            if e["method"] == method:
                return e
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._read_message(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    # --- what the checks read ------------------------------------------------------------

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def console_errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and browser log errors."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                out.append(
                    " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                )
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"].get("text")))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"{p['entry']['source']}: {p['entry']['text']}")
        return out

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise ProtocolError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def screenshot_png(self) -> bytes:
        data = self.call(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )["data"]
        return base64.b64decode(data)

    def thumbnail_png(self, scale: float = 0.2) -> bytes:
        """A small screenshot of the first screen, cheap to decode in pure Python."""
        size = self.evaluate("[innerWidth, innerHeight]")
        data = self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": scale},
            },
        )["data"]
        return base64.b64decode(data)

    def pdf(self) -> bytes:
        data = self.call("Page.printToPDF", {"printBackground": True}, timeout_s=60.0)["data"]
        return base64.b64decode(data)

    def set_color_scheme(self, scheme: str) -> None:
        self.call(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )


def _above_nine(fd: int) -> int:
    if sys.platform == "win32":
        raise RuntimeError("the DevTools pipe needs POSIX file descriptors")
    else:  # each branch is type-checked only on its own platform (mypy --platform)
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high


@contextmanager
def open_page(
    path: Path | str, width: int = 1000, height: int = 1400, first: str | None = None
) -> Iterator[Page]:
    """Chromium with a fresh profile, one tab that has loaded ``path`` (a file, or a URL
    given as a string). ``first``: a URL loaded before it, so that the tab's renderer for
    that site already runs when ``path`` is timed (a page on another port of the same host
    shares no connection with it)."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed")
    to_r, to_w = os.pipe()  # we write commands into to_w; Chromium reads fd 3
    from_r, from_w = os.pipe()  # Chromium writes fd 4; we read from_r
    # Move the child's ends above 9 so the shell's "3<&N 4>&M" cannot clobber one with the
    # other (a pipe end may itself be fd 3 or 4).
    to_r, from_w = _above_nine(to_r), _above_nine(from_w)
    profile = tempfile.TemporaryDirectory(prefix="lagscope-chromium-")
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile.name}", f"--window-size={width},{height}"]
    proc = subprocess.Popen(
        [
            "bash",
            "-c",
            f'exec 3<&{to_r} 4>&{from_w} {to_r}<&- {from_w}>&-; exec "$@"',
            "bash",
            *argv,
        ],
        pass_fds=(to_r, from_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_r)
    os.close(from_w)
    page = Page(proc=proc, to_browser=to_w, from_browser=from_r)
    try:
        target = page.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        page.session = page.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        if first is not None:
            page.call("Page.navigate", {"url": first})
            page.wait_event("Page.loadEventFired")
        page.events.clear()
        url = path if isinstance(path, str) else path.resolve().as_uri()
        page.call("Page.navigate", {"url": url})
        page.wait_event("Page.loadEventFired")
        # Console and log events of the load arrive around the load event; a round trip
        # after it flushes the ones already queued.
        page.evaluate("document.readyState")
        yield page
    finally:
        try:
            if page.proc.poll() is None:
                page.call("Browser.close", browser=True, timeout_s=10.0)
        except (ProtocolError, TimeoutError, OSError):
            pass
        os.close(to_w)
        os.close(from_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        profile.cleanup()


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of raw RGB(A) bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos = 8
    idat = b""
    width = height = 0
    channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, "only 8-bit non-interlaced PNGs"
            channels = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = prev[i]
            up_left = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif ftype == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows

"""Finding a browser already on the machine. Pure: the platform, PATH lookup and file test
are passed in.

lagscope never downloads a browser (``playwright install``): the machines it is for often
cannot. It drives one that is installed:

* ``--browser-path`` names one (any Chromium-based browser);
* on Linux, Chromium or Chrome from PATH, then their usual install folders;
* on Windows and macOS, Chrome, then Edge, by Playwright channel, when their usual
  install folders hold one.

With none found, :func:`find_browser` raises a one-line error (exit 8) saying how to get one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PureWindowsPath

from lagscope.errors import ExitCode, LagscopeError

__all__ = ["HOW_TO_GET", "BrowserChoice", "find_browser"]

_LINUX_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "microsoft-edge",
    "microsoft-edge-stable",
)
_LINUX_PATHS = (
    "/usr/bin/chromium",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/opt/google/chrome/chrome",
    "/opt/microsoft/msedge/msedge",
)
_MAC_APPS = (
    ("chrome", "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
    ("msedge", "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge"),
)
# (channel, environment variable of the base folder, path under it)
_WINDOWS_APPS = (
    ("chrome", "PROGRAMFILES", r"Google\Chrome\Application\chrome.exe"),
    ("chrome", "PROGRAMFILES(X86)", r"Google\Chrome\Application\chrome.exe"),
    ("chrome", "LOCALAPPDATA", r"Google\Chrome\Application\chrome.exe"),
    ("msedge", "PROGRAMFILES(X86)", r"Microsoft\Edge\Application\msedge.exe"),
    ("msedge", "PROGRAMFILES", r"Microsoft\Edge\Application\msedge.exe"),
)

HOW_TO_GET = (
    "install Chromium or Chrome (Debian/Ubuntu: apt install chromium) or name one with "
    "--browser-path"
)


@dataclass(frozen=True)
class BrowserChoice:
    """How Playwright launches the browser: an executable path or a channel name."""

    executable: str | None
    channel: str | None
    source: str  # what found it, for the report: "--browser-path", "PATH", "channel chrome"

    def __post_init__(self) -> None:
        if (self.executable is None) == (self.channel is None):
            raise ValueError("exactly one of executable and channel")


def find_browser(
    explicit: str | None,
    platform: str,
    environ: Mapping[str, str],
    which: Callable[[str], str | None],
    is_file: Callable[[str], bool],
) -> BrowserChoice:
    """The browser to drive, or a LagscopeError (exit 8) naming what to do."""
    if explicit is not None:
        if not is_file(explicit):
            raise LagscopeError(
                "browser", f"--browser-path {explicit!r} is not a file", ExitCode.ENVIRONMENT
            )
        return BrowserChoice(explicit, None, "--browser-path")
    if platform.startswith("win"):
        for channel, base_var, tail in _WINDOWS_APPS:
            base = environ.get(base_var)
            if base and is_file(str(PureWindowsPath(base, tail))):
                return BrowserChoice(None, channel, f"channel {channel}")
        where = "Chrome or Edge"
    elif platform == "darwin":
        for channel, app in _MAC_APPS:
            if is_file(app):
                return BrowserChoice(None, channel, f"channel {channel}")
        where = "Chrome or Edge"
    else:
        for name in _LINUX_NAMES:
            found = which(name)
            if found:
                return BrowserChoice(found, None, "PATH")
        for path in _LINUX_PATHS:
            if is_file(path):
                return BrowserChoice(path, None, "usual location")
        where = "Chromium, Chrome or Edge"
    raise LagscopeError(
        "browser", f"no {where} found on this machine: {HOW_TO_GET}", ExitCode.ENVIRONMENT
    )

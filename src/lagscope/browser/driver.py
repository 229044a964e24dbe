"""The Playwright shell: launch a browser already on the machine, load a page, hand over what
the browser reported. Everything it reads goes to :func:`lagscope.browser.model.build_load`.

One :class:`BrowserSession` is one browser process; each :meth:`BrowserSession.visit` opens a
fresh context (empty cache, no connections), loads the URL cold, reloads it, and optionally
reloads again after sitting idle. Per load it keeps the DevTools protocol's
``Network.responseReceived`` events (they carry the connection id) and reads the page's
Navigation and Resource Timing entries once the load event has fired.

Playwright is the ``browser`` extra and is imported only here, when a browser is asked for;
without it, or without a browser, the error is one line with exit code 8 and says how to get
one. Never ``playwright install``: the browser is found by :mod:`lagscope.browser.locate`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lagscope.browser.locate import HOW_TO_GET, BrowserChoice, find_browser
from lagscope.browser.model import BrowserRun, PageLoad, build_load, idle_rule
from lagscope.errors import ExitCode, LagscopeError
from lagscope.stopping import ClosedOnExit

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = [
    "LAUNCH_ARGS",
    "BrowserSession",
    "LoadHook",
    "check_ready",
    "find_installed",
    "load_page",
    "open_browser",
]

# The machine may have no network at all: without these Chromium spends the run on refused
# connections of its own (updates, sync, field trials), which would share the measured page's
# six connections per host and its CPU.
LAUNCH_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
)
# Resource Timing keeps 250 entries by default; a page with more would lose the rest.
_INIT_SCRIPT = "performance.setResourceTimingBufferSize(2000);"
_READ_ENTRIES = """() => ({
  navigation: performance.getEntriesByType('navigation').map(e => e.toJSON()),
  resources: performance.getEntriesByType('resource').map(e => e.toJSON()),
})"""

Sleep = Callable[[float], None]
# Called with a load's label ("cold", "reload", "idle reload") just before it starts and
# once the browser has reported it: what a caller measures around one load alone (a
# benchmark's CPU times), without the context's setup or the other loads.
LoadHook = Callable[[str], None]

_NO_EXTRA = (
    "the browser extra is not installed: pip install 'lagscope[browser]' (Playwright for "
    f"Python; it drives a browser already here, so also {HOW_TO_GET})"
)


def _is_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _running_as_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # Playwright prefixes its API call ("Page.goto: net::ERR_...").
    return line.split(": ", 1)[1] if line.startswith(("Page.", "BrowserType.")) else line


def _load_error(url: str, exc: BaseException, timeout_s: float) -> LagscopeError:
    line = _first_line(exc)
    if "Timeout" in type(exc).__name__ or "Timeout " in line:
        return LagscopeError(
            "browser", f"{url} did not finish loading in {timeout_s:g} s", ExitCode.TIMEOUT
        )
    codes = (
        ("ERR_NAME_NOT_RESOLVED", ExitCode.RESOLVE),
        ("ERR_CONNECTION_REFUSED", ExitCode.CONNECT),
        ("ERR_ADDRESS_UNREACHABLE", ExitCode.CONNECT),
        ("ERR_CERT", ExitCode.TLS),
        ("ERR_SSL", ExitCode.TLS),
        ("ERR_TIMED_OUT", ExitCode.TIMEOUT),
    )
    for marker, code in codes:
        if marker in line:
            return LagscopeError("browser", f"loading {url}: {line}", code)
    return LagscopeError("browser", f"loading {url}: {line}", ExitCode.PROTOCOL)


_TEMP_VARS = ("TMPDIR", "TEMP", "TMP")
# How long close keeps removing the browser's temporary directory while an interrupted
# browser is still exiting.
TMP_REMOVE_S = 5.0


@contextlib.contextmanager
def _temp_dir_for_children(path: str) -> Iterator[None]:
    """Child processes started inside see ``path`` as their temporary directory (the
    driver copies this process's environment when it starts)."""
    saved = {name: os.environ.get(name) for name in _TEMP_VARS}
    os.environ.update({name: path for name in _TEMP_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_PLAYWRIGHT_LOG = logging.getLogger("playwright")


def _drop_stale_answers(record: logging.LogRecord) -> bool:
    """While a session is open: a call that a stop signal interrupted (Ctrl+C,
    lagscope.stopping) gets its answer after nobody waits for it, which Playwright logs
    with a traceback ("Cannot find command to respond") that would reach the terminal;
    every other record passes."""
    error = record.exc_info[1] if record.exc_info else None
    return error is None or "Cannot find command to respond" not in str(error)


class BrowserSession(ClosedOnExit):
    """One headless browser process; :meth:`visit` loads a URL in a fresh context."""

    def __init__(
        self,
        choice: BrowserChoice,
        timeout_s: float,
        sleep: Sleep = time.sleep,
        trusted_spki: tuple[str, ...] = (),
    ):
        self.choice = choice
        self.timeout_s = timeout_s
        self.sleep = sleep
        # base64 SHA-256 public-key hashes this browser accepts certificates for as if they
        # were valid (Chromium's --ignore-certificate-errors-spki-list): the local CA's
        # server key, trusted by this browser only, nothing installed on the machine. Unlike
        # ignore_https_errors, the first connection is not an error that Chromium retries
        # on a second connection.
        self.trusted_spki = trusted_spki
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._tmp: str | None = None

    def __enter__(self) -> BrowserSession:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise LagscopeError("browser", _NO_EXTRA, ExitCode.ENVIRONMENT) from None
        args = list(LAUNCH_ARGS)
        if _running_as_root():
            args.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
        if self.trusted_spki:
            args.append("--ignore-certificate-errors-spki-list=" + ",".join(self.trusted_spki))
        # The driver makes the browser's throwaway profile (playwright_*profile-*) and the
        # browser its own temporary folders (org.chromium.Chromium.*) in its temporary
        # directory; one of ours, removed at close, so a run stopped by Ctrl+C or by a
        # process-group SIGTERM (which also stop the driver and the browser before they can
        # clean up) leaves nothing behind. A stop that arrives while they start (a
        # KeyboardInterrupt from lagscope.stopping, which is no Playwright Error) removes
        # it too.
        self._tmp = tempfile.mkdtemp(prefix="lagscope-browser-")
        # Until close: an interrupted call's late answer is not printed (the visit's own
        # cleanup, context.close(), is the first call after the interrupt).
        _PLAYWRIGHT_LOG.addFilter(_drop_stale_answers)
        try:
            self._start(args, sync_playwright)
        except BaseException:
            self.close()
            raise
        return self

    def _start(self, args: list[str], sync_playwright: Callable[[], Any]) -> None:
        from playwright.sync_api import Error

        assert self._tmp is not None
        try:
            # Its driver (a Node.js process shipped in the wheel) may fail to start, and the
            # sync API refuses to run inside a running asyncio loop: both say so in one line.
            with _temp_dir_for_children(self._tmp):
                self._playwright = sync_playwright().start()
        except Error as exc:
            self._remove_tmp()
            raise LagscopeError(
                "browser", f"Playwright did not start: {_first_line(exc)}", ExitCode.ENVIRONMENT
            ) from None
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.choice.executable,
                channel=self.choice.channel,
                headless=True,
                args=args,
                timeout=self.timeout_s * 1000,
            )
        except Error as exc:
            self.close()
            what = self.choice.executable or f"channel {self.choice.channel}"
            raise LagscopeError(
                "browser",
                f"could not start {what}: {_first_line(exc)} ({HOW_TO_GET})",
                ExitCode.ENVIRONMENT,
            ) from None

    def close(self) -> None:
        browser, self._browser = self._browser, None
        driver, self._playwright = self._playwright, None
        from playwright.sync_api import Error

        try:
            if browser is not None:
                browser.close()
        except Error:
            pass  # the browser already went (Ctrl+C reaches its process group too)
        finally:
            try:
                if driver is not None:
                    driver.stop()
            finally:
                _PLAYWRIGHT_LOG.removeFilter(_drop_stale_answers)
                self._remove_tmp()

    def _remove_tmp(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp is None:
            return
        # A browser stopped by a signal to its process group may still be exiting, and
        # writing in there, when we get here: remove again until it is gone (bounded).
        deadline = time.monotonic() + TMP_REMOVE_S
        while True:
            shutil.rmtree(tmp, ignore_errors=True)
            if not os.path.lexists(tmp) or time.monotonic() >= deadline:
                return
            time.sleep(0.05)  # the exiting browser's next write, then remove again

    @property
    def name(self) -> str:
        if self._browser is None:
            return "not started"
        product = self.choice.channel or os.path.basename(self.choice.executable or "chromium")
        return f"{product} {self._browser.version}"

    def visit(
        self,
        url: str,
        *,
        reload: bool = True,
        idle_s: float | None = None,
        ignore_https_errors: bool = False,
        before_load: LoadHook | None = None,
        after_load: LoadHook | None = None,
    ) -> BrowserRun:
        """A cold load in a fresh context, then a reload, then (``idle_s``) a reload after
        sitting idle that long. Raises LagscopeError when the page does not load.
        ``before_load`` and ``after_load`` are called around each load (LoadHook)."""
        from playwright.sync_api import Error

        if self._browser is None:
            raise RuntimeError("BrowserSession.visit outside its with block")
        context = self._browser.new_context(
            ignore_https_errors=ignore_https_errors, service_workers="block"
        )
        try:
            page = context.new_page()
            page.add_init_script(_INIT_SCRIPT)
            cdp = context.new_cdp_session(page)
            responses: list[dict[str, Any]] = []
            cdp.on("Network.responseReceived", lambda e: responses.append(e["response"]))
            cdp.send("Network.enable")
            loads: list[PageLoad] = []
            seen: frozenset[int] = frozenset()
            steps: list[tuple[str, float | None]] = [("cold", None)]
            if reload:
                steps.append(("reload", None))
            if idle_s is not None:
                steps.append(("idle reload", idle_s))
            for label, idle in steps:
                if idle is not None:
                    self.sleep(idle)
                responses.clear()
                if before_load is not None:
                    before_load(label)
                try:
                    if label == "cold":
                        page.goto(url, wait_until="load", timeout=self.timeout_s * 1000)
                    else:
                        page.reload(wait_until="load", timeout=self.timeout_s * 1000)
                    entries = page.evaluate(_READ_ENTRIES)
                except Error as exc:
                    raise _load_error(url, exc, self.timeout_s) from None
                if after_load is not None:
                    after_load(label)
                navigation = entries.get("navigation") or [{}]
                load, seen = build_load(
                    label, navigation[0], entries.get("resources") or [], responses, seen, idle
                )
                loads.append(load)
        finally:
            context.close()
        return BrowserRun(
            browser=self.name,
            source=self.choice.source,
            url=url,
            loads=tuple(loads),
            idle_rule=None if idle_s is None else idle_rule(idle_s),
        )


def find_installed(
    browser_path: str | None = None,
    platform: str = sys.platform,
    environ: Mapping[str, str] | None = None,
) -> BrowserChoice:
    """The browser on this machine :func:`~lagscope.browser.locate.find_browser` picks
    (``browser_path`` first), or its one-line error (exit 8)."""
    return find_browser(
        browser_path,
        platform,
        os.environ if environ is None else environ,
        shutil.which,
        _is_file,
    )


def check_ready(browser_path: str | None = None) -> BrowserChoice:
    """The installed browser to drive, checked before anything else runs: a one-line
    LagscopeError (exit 8) saying how to get one when Playwright (the ``browser`` extra) or
    a browser is missing."""
    if importlib.util.find_spec("playwright") is None:
        raise LagscopeError("browser", _NO_EXTRA, ExitCode.ENVIRONMENT)
    return find_installed(browser_path)


def open_browser(
    browser_path: str | None = None,
    *,
    timeout_s: float = 30.0,
    sleep: Sleep = time.sleep,
    trusted_spki: tuple[str, ...] = (),
) -> BrowserSession:
    """A session on the installed browser (``browser_path`` first); use it in a ``with``
    block."""
    return BrowserSession(find_installed(browser_path), timeout_s, sleep, trusted_spki)


def load_page(
    url: str,
    browser_path: str | None = None,
    *,
    idle_s: float | None = None,
    timeout_s: float = 30.0,
    ignore_https_errors: bool = False,
) -> BrowserRun:
    """One visit (cold load, reload, optional idle reload) in a browser of its own."""
    with open_browser(browser_path, timeout_s=timeout_s) as session:
        return session.visit(url, idle_s=idle_s, ignore_https_errors=ignore_https_errors)

"""Which browser lagscope drives, per platform (pure: PATH and files passed in)."""

from __future__ import annotations

import pytest

from lagscope.browser.locate import BrowserChoice, find_browser
from lagscope.errors import ExitCode, LagscopeError


def nothing(_: str) -> None:
    return None


def test_explicit_path_wins() -> None:
    choice = find_browser(
        "/x/chrome", "linux", {}, lambda n: "/usr/bin/" + n, {"/x/chrome"}.__contains__
    )
    assert choice == BrowserChoice("/x/chrome", None, "--browser-path")


def test_explicit_path_that_is_not_a_file() -> None:
    with pytest.raises(LagscopeError) as err:
        find_browser("/nope", "linux", {}, nothing, lambda _: False)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    assert "--browser-path" in err.value.one_line()


def test_linux_path_then_usual_locations() -> None:
    found = find_browser(
        None, "linux", {}, {"google-chrome": "/opt/bin/google-chrome"}.get, lambda _: False
    )
    assert found == BrowserChoice("/opt/bin/google-chrome", None, "PATH")
    usual = find_browser(None, "linux", {}, nothing, {"/snap/bin/chromium"}.__contains__)
    assert usual.executable == "/snap/bin/chromium"


def test_windows_uses_channels_where_installed() -> None:
    env = {"PROGRAMFILES(X86)": r"C:\Program Files (x86)"}
    edge = r"C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe"
    got = find_browser(None, "win32", env, nothing, {edge}.__contains__)
    assert got == BrowserChoice(None, "msedge", "channel msedge")


def test_macos_prefers_chrome() -> None:
    apps = {
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "/Applications/Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
    }
    assert find_browser(None, "darwin", {}, nothing, apps.__contains__).channel == "chrome"


@pytest.mark.parametrize("platform", ["linux", "win32", "darwin"])
def test_none_found_is_one_line_exit_8_with_how_to_get_one(platform: str) -> None:
    with pytest.raises(LagscopeError) as err:
        find_browser(None, platform, {}, nothing, lambda _: False)
    assert err.value.exit_code == ExitCode.ENVIRONMENT
    line = err.value.one_line()
    assert "\n" not in line and "--browser-path" in line and "install" in line

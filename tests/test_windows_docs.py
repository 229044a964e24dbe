"""docs/windows.md's service examples agree with serve's settings table, and parse.

The WinSW XML and the NSSM script cannot run here; what can be checked is that they are
well-formed, that their stop timeouts leave serve its whole drain, and that every serve
flag they pass exists and matches the default it claims to restate.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from lagscope.cli import main
from lagscope.refapp.config import default_data_dir, parse_database_url
from lagscope.serve.settings import ServeConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"
WINDOWS = DOCS / "windows"
_SERVE_DEFAULTS = ServeConfig.__dataclass_fields__


def _default(name: str) -> object:
    return _SERVE_DEFAULTS[name].default


def _windows_words(text: str) -> list[str]:
    """Split a cmd-style command line: double quotes group, backslashes are literal."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    lexer.quotes = '"'
    lexer.commenters = ""
    return list(lexer)


def _serve_flags(words: list[str]) -> dict[str, str]:
    assert words[:3] == ["-m", "lagscope", "serve"], words
    flags: dict[str, str] = {}
    rest = words[3:]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        assert flag.startswith("--"), rest
        flags[flag] = value
    return flags


def _check_serve_flags(flags: dict[str, str]) -> float:
    """The flags exist in serve's CLI, restate its defaults, and bind loopback only."""
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    for flag in flags:
        assert flag in help_text, flag
    assert float(flags["--shutdown-timeout"]) == _default("shutdown_timeout")
    assert int(flags["--port"]) == _default("port")
    assert flags["--host"] == "127.0.0.1"  # no firewall prompt, no exposure
    return float(flags["--shutdown-timeout"])


def _seconds(winsw_duration: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|sec|secs|min|mins)\s*", winsw_duration)
    assert match, winsw_duration
    number, unit = float(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "sec": 1, "secs": 1, "min": 60, "mins": 60}[unit]


def test_winsw_config_leaves_serve_its_drain() -> None:
    root = ET.parse(WINDOWS / "lagscope-serve.xml").getroot()
    assert root.tag == "service"
    executable = root.findtext("executable") or ""
    assert executable.lower().endswith("python.exe")
    flags = _serve_flags(_windows_words(root.findtext("arguments") or ""))
    drain_s = _check_serve_flags(flags)
    stop_s = _seconds(root.findtext("stoptimeout") or "")
    assert stop_s >= drain_s + 10, "WinSW must wait out the drain before TerminateProcess"
    env = {e.get("name"): e.get("value") for e in root.iter("env")}
    assert env["LAGSCOPE_DATA_DIR"] == r"C:\ProgramData\lagscope"


def test_nssm_script_leaves_serve_its_drain() -> None:
    lines = (WINDOWS / "nssm-install.cmd").read_text(encoding="utf-8").splitlines()
    settings: dict[str, list[str]] = {}
    installed: list[str] = []
    for line in lines:
        if not line.startswith("nssm "):
            continue  # @echo off, rem comments, blank lines
        words = _windows_words(line)
        assert words[2] == "lagscope-serve", line
        if words[1] == "install":
            installed = words[3:]
        else:
            assert words[1] == "set", line
            settings[words[3]] = words[4:]
    assert installed and installed[0].lower().endswith("python.exe")
    drain_s = _check_serve_flags(_serve_flags(settings["AppParameters"]))
    (console_ms,) = settings["AppStopMethodConsole"]
    assert int(console_ms) / 1000 >= drain_s + 10, "NSSM must wait out the drain after Ctrl+C"
    # 2 | 4: skip WM_CLOSE and WM_QUIT, never the Ctrl+C (1) that starts the drain.
    (skip,) = settings["AppStopMethodSkip"]
    assert int(skip) & 1 == 0
    assert settings["ObjectName"] == [r"NT AUTHORITY\LocalService"]


def test_the_service_files_have_windows_line_endings_in_git() -> None:
    attributes = (DOCS.parent / ".gitattributes").read_text(encoding="utf-8")
    assert re.search(r"^\*\.cmd\s+text\s+eol=crlf$", attributes, re.M)
    assert re.search(r"^\*\s+text=auto$", attributes, re.M)


def test_windows_paths_in_the_docs_are_the_ones_lagscope_uses() -> None:
    text = (DOCS / "windows.md").read_text(encoding="utf-8")
    env = {"LOCALAPPDATA": r"C:\Users\ann\AppData\Local", "USERPROFILE": r"C:\Users\ann"}
    assert "%LOCALAPPDATA%\\lagscope" in text
    assert (
        str(default_data_dir(env, "win32")).replace("/", "\\").endswith(r"AppData\Local\lagscope")
    )
    assert "sqlite:///C:/lagscope/demo.sqlite3" in text
    assert parse_database_url("sqlite:///C:/lagscope/demo.sqlite3", Path("."))["NAME"] == (
        "C:/lagscope/demo.sqlite3"
    )
    for needle in ("Add-MpPreference", "AppStopMethodConsole", "stoptimeout", "verified"):
        assert needle in text, needle

"""Narrow console encodings (Windows' cp1252 when output is redirected): ASCII stand-ins, never a
UnicodeEncodeError traceback; a stream that cannot take stand-ins is exit 8 in one line."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from lagscope.cli import main
from lagscope.console import ERROR_HANDLER, ascii_stand_in, fitted_streams, printable
from lagscope.errors import ExitCode, LagscopeError
from support.hostile import assert_terminal_safe, hostile_text
from support.wsgi import waitress_server


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    headers = [("Content-Length", "2"), ("Server-Timing", 'total;dur=0.001;desc="µs → ✓"')]
    start_response("200 OK", headers)  # type: ignore[operator]
    return [b"ok"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with waitress_server(_app) as (host, port):
        yield f"http://{host}:{port}/"


@pytest.fixture(scope="module")
def saved(url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "run.json"
    result = CliRunner().invoke(main, ["probe", url, "--cold", "2", "--warm", "3", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize(
    ("char", "stand_in"),
    [("→", "->"), ("−", "-"), ("µ", "u"), ("…", "..."), ("─", "-"), ("│", "|"), ("┼", "+")],
)
def test_stand_ins_read_like_the_character(char: str, stand_in: str) -> None:
    assert ascii_stand_in(char) == stand_in


def test_accents_are_dropped_and_the_rest_is_a_question_mark() -> None:
    assert [ascii_stand_in(c) for c in "éÅ漢\x07"] == ["e", "A", "?", "?"]


@given(st.text())
def test_any_text_encodes_to_narrow_codecs_with_the_handler(text: str) -> None:
    for codec in ("cp1252", "ascii", "latin-1", "cp437"):
        text.encode(codec, errors=ERROR_HANDLER)


def _probe_env(encoding: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = encoding
    env.pop("PYTHONUTF8", None)
    return env


# (An "ascii" console is not such a case: click takes it for a misconfigured locale and writes
# UTF-8 to it.)
@pytest.mark.parametrize("encoding", ["cp1252", "cp437"])
def test_a_redirected_windows_console_gets_stand_ins(url: str, encoding: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lagscope", "probe", url, "--cold", "6", "--warm", "6"],
        env=_probe_env(encoding),
        capture_output=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode(encoding)  # strictly: every byte is the console's own
    assert "cold-warm" in out and "Verdict:" in out
    assert b"Traceback" not in res.stderr


def test_saved_report_renders_to_cp1252_in_a_subprocess(saved: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "lagscope", "probe", "--load", str(saved)],
        env=_probe_env("cp1252"),
        capture_output=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode("cp1252")
    assert "cold-warm" in out and "\u2212" not in out


def test_click_runner_with_a_cp1252_charset(saved: Path) -> None:
    result = CliRunner(charset="cp1252").invoke(main, ["probe", "--load", str(saved)])
    assert result.exit_code == 0, result.output
    assert "cold-warm" in result.stdout_bytes.decode("cp1252")


def test_usage_errors_on_a_narrow_console_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "naïve→.json"
    result = CliRunner(charset="cp1252").invoke(main, ["probe", "--load", str(missing)])
    assert result.exit_code == ExitCode.USAGE
    line = result.stderr_bytes.decode("cp1252")
    assert line.startswith("lagscope: load: cannot read") and "naïve->.json" in line


class _StrictCp1252:
    """A console stream that cannot be reconfigured: writes must be cp1252 as they are."""

    encoding = "cp1252"

    def __init__(self) -> None:
        self.data = b""

    def write(self, text: str) -> int:
        self.data += text.encode("cp1252")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_a_stream_without_stand_ins_is_a_one_line_exit_8(saved: Path) -> None:
    out, err = _StrictCp1252(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main.main(["probe", "--load", str(saved)], "lagscope", standalone_mode=False)
    assert code == ExitCode.ENVIRONMENT
    line = err.getvalue()
    assert line.count("\n") == 1
    assert line.startswith("lagscope: output: the console's encoding (cp1252) cannot show")
    assert "PYTHONIOENCODING=utf-8" in line


def test_utf8_streams_are_left_alone() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    with contextlib.redirect_stdout(stream), fitted_streams():
        assert stream.errors == "strict"
    narrow = io.TextIOWrapper(io.BytesIO(), encoding="cp1252", errors="strict")
    with contextlib.redirect_stdout(narrow):
        with fitted_streams():
            assert narrow.errors == ERROR_HANDLER
        assert narrow.errors == "strict"


@given(hostile_text, st.sampled_from(["", "\n", "\n\t"]))
def test_printable_leaves_no_control_character(text: str, keep: str) -> None:
    shown = printable(text, keep)
    assert_terminal_safe(shown.replace("\t", ""), color=False)
    for c in keep:
        assert shown.count(c) == text.count(c)
    assert printable("plain text, µs → ✓") == "plain text, µs → ✓"


@given(hostile_text)
def test_error_lines_escape_what_they_quote(text: str) -> None:
    """A message quoting a server (a bad Location, a driver's error) is one safe line."""
    line = LagscopeError("redirect", f"bad Location {text}", ExitCode.PROTOCOL).one_line()
    assert_terminal_safe(line, color=False)
    assert "\n" not in line


def test_a_printable_stream_escapes_every_control_but_newline_and_tab() -> None:
    import io

    from lagscope.console import PrintableStream

    sink = io.StringIO()
    stream = PrintableStream(sink)
    text = "".join(map(chr, range(0xA0))) + "\u202e\n"
    assert stream.write(text) == len(text)
    stream.writelines(["\x1b]52;c;eA==\x07", "\x9b31m"])
    out = sink.getvalue()
    assert not [c for c in out if c not in "\n\t" and not c.isprintable()]
    assert "\t" in out and out.endswith("\\u202e\n\\x1b]52;c;eA==\\x07\\x9b31m")

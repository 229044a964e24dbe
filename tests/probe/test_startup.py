"""Start-up: ``lagscope probe`` imports only what it uses. rich comes in only for a progress bar
on a terminal, jsonschema only for --load, ssl only for an https URL, and never Django or
psycopg."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator

import pytest

from support.wsgi import waitress_server

HEAVY = (
    "rich",
    "django",
    "psycopg",
    "psycopg_pool",
    "waitress",
    "jsonschema",
    "jinja2",
    "asyncio",
    "ssl",
)

# Runs the CLI in a fresh interpreter and prints which of the watched packages (names on
# stdin, comma-separated) ended up imported. It imports nothing itself, json included.
_PROBE = """
import sys
watched = set(sys.stdin.read().split(","))
from lagscope.cli import main
try:
    main.main(sys.argv[1:], "lagscope")
except SystemExit:
    pass
loaded = sorted(w for w in watched if any(m == w or m.startswith(w + ".") for m in sys.modules))
sys.stderr.write("LOADED " + ",".join(loaded) + "\\n")
"""


def _loaded(*args: str, watch: tuple[str, ...] = HEAVY) -> list[str]:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        input=",".join(watch),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("LOADED ")]
    assert line, res.stderr
    return [name for name in line[-1][len("LOADED ") :].split(",") if name]


def _app(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
    return [b"ok"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with waitress_server(_app) as (host, port):
        yield f"http://{host}:{port}/"


def test_help_imports_nothing_heavy() -> None:
    assert _loaded("probe", "--help") == []
    assert _loaded("--version") == []


def test_help_loads_the_flags_not_the_command() -> None:
    # --help (and a usage error) needs the flags only: not the measuring shell (h11,
    # sockets), the report model, the ladder, its rules or its renderers (rich).
    watch = (
        *HEAVY,
        "h11",
        "lagscope.probe.runner",
        "lagscope.probe.model",
        "lagscope.diagnose.ladder",
        "lagscope.diagnose.rules",
        "lagscope.diagnose.model",
    )
    assert _loaded("probe", "--help", watch=watch) == []
    assert _loaded("diagnose", "--help", watch=watch) == []


def test_a_run_into_a_pipe_imports_nothing_heavy(url: str) -> None:
    # stdout and stderr are pipes here, as in scripts and CI: no progress bar, no rich.
    assert _loaded("probe", url, "--cold", "2", "--warm", "2") == []
    assert _loaded("probe", url, "--cold", "1", "--warm", "1", "--json") == []


def test_a_printed_run_without_files_loads_neither_pathlib_nor_unicodedata(url: str) -> None:
    # File options become pathlib.Path objects only when one is given (outputs.FILE_PATH);
    # unicodedata only for a console that cannot show a character (lagscope.console's
    # stand-ins); textwrap only when a page is printed, not for --json or --help.
    watch = ("pathlib", "unicodedata")
    assert _loaded("probe", url, "--cold", "1", "--warm", "1", watch=watch) == []
    assert _loaded("probe", url, "--cold", "1", "--warm", "1", "--json", watch=("textwrap",)) == []
    assert _loaded("probe", "--help", watch=("pathlib",)) == []


def test_a_run_printed_for_people_does_not_lay_out_json(url: str) -> None:
    # The JSON form is built only for --json, -o, --html or --har, and the atomic file
    # writer loads only for a file to write.
    watch = ("json", "lagscope.fileio")
    assert _loaded("probe", url, "--cold", "1", "--warm", "1", watch=watch) == []
    assert _loaded("probe", url, "--cold", "1", "--warm", "1", "--json", watch=("json",)) == [
        "json"
    ]


def test_the_process_entry_keeps_output_and_exit_codes() -> None:
    # The console script and python -m go through lagscope.process_entry.run (the collector's
    # process-wide choices: off while loading, the heap frozen).
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "lagscope"]
    assert script.value == "lagscope.process_entry:run"
    ok = subprocess.run(
        [sys.executable, "-m", "lagscope", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (ok.returncode, ok.stdout.startswith("lagscope, version "), ok.stderr) == (0, True, "")
    bad = subprocess.run(
        [sys.executable, "-m", "lagscope", "probe"], capture_output=True, text=True, timeout=60
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == "lagscope: options: missing URL (or --load FILE)\n"


# Records, for every collection after the process entry starts, how much of the heap was
# frozen at that moment; then whether the collector is on once the command ran.
_ENTRY = """
import gc, sys
from lagscope import process_entry
frozen_at = []
gc.callbacks.append(
    lambda phase, info: frozen_at.append(gc.get_freeze_count()) if phase == "start" else None
)
sys.argv = ["lagscope", *sys.argv[1:]]
try:
    process_entry.run()
except SystemExit:
    pass
sys.stderr.write(f"ENTRY {gc.isenabled()} {min(frozen_at, default=-1)}\\n")
"""


def test_the_process_entry_loads_with_the_collector_off_then_freezes() -> None:
    # With the collector on while click and the command load, about twenty collections
    # would run there, with nothing frozen yet; through the entry, the only ones (help
    # text formatting may start one) come after click's objects and the command's are
    # frozen, and the collector is on again for the command's own work.
    res = subprocess.run(
        [sys.executable, "-c", _ENTRY, "probe", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("ENTRY ")]
    enabled, frozen_at_first = line.split()[1:]
    assert enabled == "True", res.stderr
    assert int(frozen_at_first) == -1 or int(frozen_at_first) > 10_000, res.stderr


@pytest.mark.parametrize("collecting", [True, False])
def test_loading_a_command_leaves_the_collector_as_it_found_it(
    collecting: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cyclic collector is paused while a command's modules load, and only then.
    from click.testing import CliRunner

    from lagscope.cli import main

    was = gc.isenabled()
    try:
        (gc.enable if collecting else gc.disable)()
        assert CliRunner().invoke(main, ["probe", "--help"]).exit_code == 0
        assert gc.isenabled() is collecting
        # A command that cannot load (its module missing) still restores it.
        monkeypatch.setitem(sys.modules, "lagscope.nginx.cli", None)
        assert CliRunner().invoke(main, ["nginx-config"]).exit_code == 8
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()

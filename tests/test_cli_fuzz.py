"""Any string for any option of any command: exit 0 or a one-line error with a documented
code, never a traceback.

Every command runs for real through click, so each option's whole path is covered (click's
conversion, the settings tables, the command's own parsing), but always in a harmless form:

* ``serve --print-config`` validates everything and starts nothing;
* ``nginx-config`` prints to stdout;
* ``inject`` runs at most 0.3 s on loopback port 0 with no client;
* ``probe`` and ``diagnose`` target a closed loopback port, so a run that gets past its
  options fails to connect (exit 4) at once;
* ``report`` writes its HAR into a temporary directory;
* ``demo`` is given ``--nginx`` with an nginx binary that does not exist, so a run whose
  options (tax, ports, database URL) pass stops there (exit 8) before starting anything.

Options that name files to write (``-o``, ``--prefix``, ``--log``, ``--html``, ``--har``)
are left out; path options get relative paths inside a temporary directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import tempfile
from collections.abc import Iterator
from urllib.parse import urlsplit

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lagscope.addresses import AddressError, parse_host_port
from lagscope.cli import _COMMANDS, main
from lagscope.errors import ExitCode
from support.net import free_port

WRITERS = {"output", "prefix", "log_path", "html_path", "har_path"}

# Numbers users type that broke commands before: NaN, tiny, huge, overflowing.
SPECIALS = [
    "",
    " ",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e-300",
    "1e309",
    "99999999999",
    "99999999999999999999",
    "-1",
    "0",
    "-0",
    "0x10",
    "1_000",
    "２",
    "127.0.0.1:0",
    "[::1]:0",
    "[::1",
    "postgresql://[::1",
    "tax",
    "tax:300,delay_ms=5",
    "a=b c",
]

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(SPECIALS),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@contextlib.contextmanager
def _in_temp_dir() -> Iterator[None]:
    # Relative paths that options name land here (and nothing is left behind).
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="lagscope-fuzz-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(previous)


def _command(name: str) -> click.Command:
    ctx = click.Context(main)
    command = main.get_command(ctx, name)
    assert command is not None
    return command


def _fuzzable(name: str) -> list[click.Parameter]:
    params = []
    for param in _command(name).params:
        if isinstance(param, click.Option) and (param.is_flag or param.count):
            continue
        if param.name in WRITERS or param.name == "help":
            continue
        params.append(param)
    return params


def _args(param: click.Parameter, value: str) -> list[str]:
    if isinstance(param, click.Argument):
        # "--" so a value that starts with a dash is still the argument.
        return ["--", value]
    return [param.opts[0], value]


def _is_path(param: click.Parameter) -> bool:
    return isinstance(param.type, click.Path) or param.name in ("config", "data", "cacert")


def _check(result: Result, allowed: set[int], what: str) -> None:
    # An exception other than SystemExit is what a user would see as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what,
        result.exc_info,
    )
    assert result.exit_code in allowed, (what, result.output)
    if result.exit_code != 0:
        errors = [
            ln for ln in result.output.splitlines() if ln.startswith(("lagscope: ", "Error: "))
        ]
        assert len(errors) == 1, (what, result.output)
    assert "Traceback" not in result.output, what


# Commands whose every option is a flag: no value to fuzz. `cert`'s subcommands take only
# --system, and running them would touch the user's trust stores.
FLAGS_ONLY = {"cert"}


def _values_taken(command: click.Command) -> list[click.Parameter]:
    params = [p for p in command.params if not (isinstance(p, click.Option) and p.is_flag)]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            params += _values_taken(sub)
    return [p for p in params if p.name != "help"]


def test_flags_only_commands_take_no_value() -> None:
    for name in FLAGS_ONLY:
        assert _values_taken(_command(name)) == [], name


FUZZED = sorted(set(_COMMANDS) - FLAGS_ONLY)


def test_every_command_is_fuzzed() -> None:
    # A new command needs a harmless way to run here (see _invoke).
    assert set(FUZZED) == {
        "demo",
        "diagnose",
        "inject",
        "nginx-config",
        "probe",
        "report",
        "serve",
    }
    for name in FUZZED:
        assert _fuzzable(name), name


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=150,
)


def _resolves_nothing(address: str) -> bool:
    """True unless ``address`` names a host that only DNS could answer: the proxy resolves
    listen names, and tests send nothing beyond this machine."""
    try:
        host, _port = parse_host_port(address, empty_host="127.0.0.1")
    except AddressError:
        return True
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _loopback_url(value: str) -> bool:
    try:
        host = urlsplit(value.strip()).hostname
    except ValueError:
        return True  # refused before any I/O
    return host in (None, "127.0.0.1")


def _short_duration(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return True
    return not math.isfinite(number) or number <= 0.3


def _harmless(name: str, param: click.Parameter, value: str) -> bool:
    """Whether running ``name`` with this value stays on this machine, short and read-only."""
    if "\x00" in value:
        return False  # the OS refuses NUL in argv; click never sees one
    if _is_path(param):
        text = value.lstrip("@")
        if text.startswith(("/", "\\", "~")) or ".." in text or ":" in text:
            return False
    if name == "inject":
        if param.name == "duration_s":
            return _short_duration(value)
        if param.name == "listen":
            return _resolves_nothing(value)
        if param.name == "route_specs":
            words = value.split()
            return _resolves_nothing(words[0].rpartition("=")[2] if words else "")
    if name in ("probe", "diagnose"):
        if param.name == "resolves":
            # Never pin the target to an address that is not loopback.
            return not value.strip().lower().startswith("127.0.0.1")
        if param.name in ("url", "direct"):
            return _loopback_url(value)
        if param.name == "database":
            # No host of its own: libpq stays on this machine (a URL or host= could not).
            return "=" not in value and "://" not in value and "@" not in value
    return True


# 4/5 from probe: the options were fine and the closed port refused (or a tiny timeout ran
# out); 8 from inject: the address asked for is in use or not on this machine.
ALLOWED = {
    "serve": {0, int(ExitCode.USAGE)},
    "nginx-config": {0, int(ExitCode.USAGE)},
    "inject": {0, int(ExitCode.USAGE), int(ExitCode.ENVIRONMENT)},
    "probe": {0, int(ExitCode.USAGE), int(ExitCode.CONNECT), int(ExitCode.TIMEOUT)},
    "report": {0, int(ExitCode.USAGE)},
    "diagnose": {0, int(ExitCode.USAGE), int(ExitCode.CONNECT), int(ExitCode.TIMEOUT)},
    "demo": {0, int(ExitCode.USAGE), int(ExitCode.ENVIRONMENT)},
}


def _invoke(name: str, param: click.Parameter, value: str, closed_port: int) -> None:
    if name == "serve":
        base = ["--print-config"]
    elif name == "nginx-config":
        base = ["--upstream", "127.0.0.1:8000"]
    elif name == "report":
        base = ["--har", "out.har"]  # inside the temporary directory
    elif name == "inject":
        base = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--duration-s", "0.05"]
    elif name == "demo":
        base = ["--no-diagnose", "--nginx"]
        if param.name != "nginx_bin":
            base += ["--nginx-bin", "no-such-nginx"]  # inside the temporary directory
    elif name == "diagnose":
        base = ["--quick", "--timeout", "2"]
        if param.name != "url":
            base.insert(0, f"http://127.0.0.1:{closed_port}/")
    else:
        base = ["--cold", "0", "--warm", "1", "--timeout", "2"]
        if param.name != "url":
            base.insert(0, f"http://127.0.0.1:{closed_port}/")
    with _in_temp_dir():
        result = CliRunner().invoke(main, [name, *base, *_args(param, value)])
    _check(result, ALLOWED[name], f"lagscope {name} {param.opts or param.name} {value!r}")


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()


@pytest.mark.parametrize("name", FUZZED)
def test_every_option_with_every_nasty_value(name: str, closed_port: int) -> None:
    for param in _fuzzable(name):
        for value in SPECIALS:
            if _harmless(name, param, value):
                _invoke(name, param, value, closed_port)


@FUZZ
@given(data=st.data())
def test_any_string_for_any_option(closed_port: int, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(FUZZED), label="command")
    param = data.draw(st.sampled_from(_fuzzable(name)), label="option")
    value = data.draw(values, label="value")
    assume(_harmless(name, param, value))
    _invoke(name, param, value, closed_port)

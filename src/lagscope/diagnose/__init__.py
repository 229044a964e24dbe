"""``lagscope diagnose``: the isolation ladder that names the ghost, its cost and the fix.

``run(url, ...)`` is the Python API: it measures the live stack and returns a
:class:`DiagnoseReport`. The rules and thresholds are pure and live in
:mod:`lagscope.diagnose.rules` and :mod:`lagscope.diagnose.thresholds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

from lagscope.diagnose.settings import DiagnoseSettings
from lagscope.lazy import lazy_exports
from lagscope.settings_table import SettingsError

if TYPE_CHECKING:
    # typing.Unpack is Python 3.11+; only the type checker reads it.
    from typing_extensions import Unpack

    from lagscope.diagnose.browser import BrowserAsk
    from lagscope.diagnose.ladder import DiagnoseOptions, Plan, Progress
    from lagscope.diagnose.model import DiagnoseReport, Finding
    from lagscope.diagnose.thresholds import Thresholds
    from lagscope.probe.net import Clock, Network
    from lagscope.probe.options import ProbeOptions

# The ladder, the model and the rules load on first use, so `lagscope diagnose --help` (which
# needs only the settings rows) does not import them.
__getattr__ = lazy_exports(
    __name__,
    {
        "DiagnoseOptions": "ladder",
        "Plan": "ladder",
        "Progress": "ladder",
        "DiagnoseReport": "model",
        "Finding": "model",
        "Thresholds": "thresholds",
    },
)

__all__ = [
    "Choices",
    "DiagnoseOptions",
    "DiagnoseReport",
    "Finding",
    "Plan",
    "Thresholds",
    "make_options",
    "run",
]


class Choices(TypedDict, total=False):
    """What a user may choose for a run: the keyword arguments of :func:`make_options` and
    :func:`run`, each optional (its default is in :func:`make_options`)."""

    direct: str | None  # the app itself, behind the proxy ``url`` points at
    database: str | None  # a PostgreSQL DSN to time connects and SELECT 1 against
    resolve: Sequence[str]  # HOST:ADDR[,ADDR...] pins
    headers: Sequence[str]  # "NAME: VALUE"
    ipv4: bool
    ipv6: bool
    timeout_s: float
    max_time_s: float
    quick: bool
    allow_load: bool
    verify_tls: bool
    thresholds: Thresholds
    command: Sequence[str]  # the command line the report shows
    browser: bool  # a real browser loads the URL last (the browser extra)
    browser_path: str | None  # that browser's executable, instead of the one found
    browser_idle_s: float | None  # also reload after the browser sat idle this long


# The command line's defaults, so the Python API's are the same numbers.
_DEFAULTS = DiagnoseSettings()


def make_options(url: str, **choices: Unpack[Choices]) -> DiagnoseOptions:
    """Validated options from the values a user gives (the CLI and :func:`run` both use it);
    every rejection is a one-line LagscopeError with exit code 2."""
    for name in choices:
        if name not in Choices.__annotations__:
            # What Python says for an explicit parameter list, so a misspelt keyword is
            # never silently ignored.
            raise TypeError(f"make_options() got an unexpected keyword argument {name!r}")
    from lagscope import dsn, redact
    from lagscope.diagnose.ladder import DiagnoseOptions
    from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS
    from lagscope.probe.options import (
        ProbeOptions,
        parse_family,
        parse_header,
        parse_resolve,
        parse_url,
    )

    family = parse_family(choices.get("ipv4", False), choices.get("ipv6", False))
    pins = tuple(parse_resolve(r) for r in choices.get("resolve", ()))
    parsed_headers = tuple(parse_header(h) for h in choices.get("headers", ()))

    def probe_for(u: str) -> ProbeOptions:
        return ProbeOptions(
            target=parse_url(u),
            headers=parsed_headers,
            timeout_s=choices.get("timeout_s", _DEFAULTS.timeout_s),
            max_time_s=choices.get("max_time_s", _DEFAULTS.max_time_s),
            family=family,
            verify_tls=choices.get("verify_tls", True),
            resolve=pins,
        )

    direct = choices.get("direct")
    database = choices.get("database")
    return DiagnoseOptions(
        probe=probe_for(url),
        direct=probe_for(direct) if direct else None,
        database=None if database is None else dsn.parse(database),
        allow_load=choices.get("allow_load", False),
        quick=choices.get("quick", False),
        thresholds=choices.get("thresholds", DEFAULT_THRESHOLDS),
        command=redact.command_line(choices.get("command", ())),
        browser=_browser_ask(choices),
    )


def _browser_ask(choices: Choices) -> BrowserAsk | None:
    from lagscope.diagnose.browser import BrowserAsk

    path = choices.get("browser_path")
    idle = choices.get("browser_idle_s")
    if not choices.get("browser", False):
        if path is not None or idle is not None:
            raise SettingsError("--browser-path and --browser-idle need --browser")
        return None
    if idle is not None:
        DiagnoseSettings(browser_idle_s=idle)  # the row's range, as on the command line
    return BrowserAsk(path=path, idle_s=idle)


def run(
    url: str,
    *,
    network: Network | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    **choices: Unpack[Choices],
) -> DiagnoseReport:
    """Diagnose ``url`` (``choices``: see :class:`Choices`). Raises
    :class:`lagscope.errors.LagscopeError` when it cannot be measured (exit codes as for
    ``lagscope probe``)."""
    from lagscope.diagnose.ladder import diagnose

    opts = make_options(url, **choices)
    return diagnose(opts, network=network, clock=clock, environ=environ, progress=progress)

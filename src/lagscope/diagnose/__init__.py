"""``lagscope diagnose``: the isolation ladder that names the ghost, its cost and the fix.

``run(url, ...)`` is the Python API: it measures the live stack and returns a
:class:`DiagnoseReport`. The rules and thresholds are pure and live in
:mod:`lagscope.diagnose.rules` and :mod:`lagscope.diagnose.thresholds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lagscope.diagnose.settings import DiagnoseSettings
from lagscope.lazy import lazy_exports
from lagscope.settings_table import build, rows

if TYPE_CHECKING:
    from lagscope.diagnose.ladder import Progress
    from lagscope.diagnose.model import DiagnoseReport, Finding
    from lagscope.diagnose.options import DiagnoseOptions, Plan
    from lagscope.diagnose.thresholds import Thresholds
    from lagscope.probe.net import Clock, Network

# The ladder, the model and the rules load on first use, so `lagscope diagnose --help` (which
# needs only the settings rows) does not import them.
__getattr__ = lazy_exports(
    __name__,
    {
        "DiagnoseOptions": "options",
        "Plan": "options",
        "Progress": "ladder",
        "DiagnoseReport": "model",
        "Finding": "model",
        "Thresholds": "thresholds",
    },
)

__all__ = [
    "DiagnoseOptions",
    "DiagnoseReport",
    "DiagnoseSettings",
    "Finding",
    "Plan",
    "Thresholds",
    "make_options",
    "run",
]


def make_options(
    url: str,
    settings: DiagnoseSettings | None = None,
    *,
    resolve: Sequence[str] = (),
    headers: Sequence[str] = (),
    ipv4: bool = False,
    ipv6: bool = False,
    verify_tls: bool = True,
    cafile: str | None = None,
    thresholds: Thresholds | None = None,
    command: Sequence[str] = (),
    **table: object,
) -> DiagnoseOptions:
    """Validated options from the values a user gives (the CLI and :func:`run` both use it);
    every rejection is a one-line LagscopeError with exit code 2.

    The run's choices are the rows of :class:`DiagnoseSettings`, given as that record or
    as keywords named as its fields (``quick=True``, ``timeout_s=2``; None is "not given",
    so the row's default applies). The other keywords are the request flags diagnose shares
    with probe (``resolve`` and ``headers`` as on the command line, ``ipv4``, ``ipv6``,
    ``verify_tls``, ``cafile``), the thresholds
    (:data:`~lagscope.diagnose.thresholds.DEFAULT_THRESHOLDS`) and the command line the
    report shows.
    """
    names = {row.name for row in rows(DiagnoseSettings)}
    for name in table:
        if name not in names:
            # What Python says for an explicit parameter list, so a misspelt keyword is
            # never silently ignored.
            raise TypeError(f"make_options() got an unexpected keyword argument {name!r}")
    if settings is not None and table:
        raise TypeError("make_options() takes settings or their keywords, not both")
    chosen = settings if settings is not None else build(DiagnoseSettings, table)[0]
    from lagscope import dsn, redact
    from lagscope.diagnose.browser import BrowserAsk
    from lagscope.diagnose.options import DiagnoseOptions
    from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS
    from lagscope.probe.options import (
        ProbeOptions,
        parse_family,
        parse_header,
        parse_resolve,
        parse_url,
    )

    family = parse_family(ipv4, ipv6)
    pins = tuple(parse_resolve(r) for r in resolve)
    parsed_headers = tuple(parse_header(h) for h in headers)

    def probe_for(u: str) -> ProbeOptions:
        return ProbeOptions(
            target=parse_url(u),
            headers=parsed_headers,
            timeout_s=chosen.timeout_s,
            max_time_s=chosen.max_time_s,
            family=family,
            verify_tls=verify_tls,
            cafile=cafile,
            resolve=pins,
        )

    return DiagnoseOptions(
        probe=probe_for(url),
        direct=probe_for(chosen.direct) if chosen.direct else None,
        database=None if chosen.database is None else dsn.parse(chosen.database),
        allow_load=chosen.allow_load,
        quick=chosen.quick,
        thresholds=thresholds or DEFAULT_THRESHOLDS,
        command=redact.command_line(command),
        browser=(
            BrowserAsk(path=chosen.browser_path, idle_s=chosen.browser_idle_s)
            if chosen.browser
            else None
        ),
    )


def run(
    url: str,
    *,
    network: Network | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    settings: DiagnoseSettings | None = None,
    **choices: object,
) -> DiagnoseReport:
    """Diagnose ``url`` (``settings`` and ``choices``: as :func:`make_options` takes them).
    Raises :class:`lagscope.errors.LagscopeError` when it cannot be measured (exit codes as
    for ``lagscope probe``)."""
    from lagscope.diagnose.ladder import diagnose

    opts = make_options(url, settings, **choices)  # type: ignore[arg-type]
    return diagnose(opts, network=network, clock=clock, environ=environ, progress=progress)

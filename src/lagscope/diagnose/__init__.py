"""``lagscope diagnose``: the isolation ladder that names the ghost, its cost and the fix.

``run(url, ...)`` is the Python API: it measures the live stack and returns a
:class:`DiagnoseReport`. The rules and thresholds are pure and live in
:mod:`lagscope.diagnose.rules` and :mod:`lagscope.diagnose.thresholds`.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from lagscope.diagnose.ladder import DiagnoseOptions, Plan, Progress, diagnose
from lagscope.diagnose.model import DiagnoseReport, Finding
from lagscope.diagnose.thresholds import DEFAULT_THRESHOLDS, Thresholds
from lagscope.errors import ExitCode, LagscopeError
from lagscope.probe.net import Clock, Network
from lagscope.probe.options import ProbeOptions, parse_header, parse_resolve, parse_url

__all__ = [
    "DiagnoseOptions",
    "DiagnoseReport",
    "Finding",
    "Plan",
    "Thresholds",
    "make_options",
    "run",
]


def make_options(
    url: str,
    *,
    direct: str | None = None,
    database: str | None = None,
    resolve: Sequence[str] = (),
    headers: Sequence[str] = (),
    ipv4: bool = False,
    ipv6: bool = False,
    timeout_s: float = 10.0,
    max_time_s: float = 60.0,
    quick: bool = False,
    allow_load: bool = False,
    verify_tls: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    command: Sequence[str] = (),
) -> DiagnoseOptions:
    """Validated options from the values a user gives (the CLI and :func:`run` both use it);
    every rejection is a one-line LagscopeError with exit code 2."""
    if ipv4 and ipv6:
        raise LagscopeError("options", "-4 and -6 exclude each other", ExitCode.USAGE)
    family = socket.AF_INET if ipv4 else (socket.AF_INET6 if ipv6 else socket.AF_UNSPEC)
    pins = tuple(parse_resolve(r) for r in resolve)
    parsed_headers = tuple(parse_header(h) for h in headers)

    def probe_for(u: str) -> ProbeOptions:
        return ProbeOptions(
            target=parse_url(u),
            headers=parsed_headers,
            timeout_s=timeout_s,
            max_time_s=max_time_s,
            family=family,
            verify_tls=verify_tls,
            resolve=pins,
        )

    return DiagnoseOptions(
        probe=probe_for(url),
        direct=probe_for(direct) if direct else None,
        database=database,
        allow_load=allow_load,
        quick=quick,
        thresholds=thresholds,
        command=tuple(command),
    )


def run(
    url: str,
    *,
    direct: str | None = None,
    database: str | None = None,
    resolve: Sequence[str] = (),
    headers: Sequence[str] = (),
    ipv4: bool = False,
    ipv6: bool = False,
    timeout_s: float = 10.0,
    max_time_s: float = 60.0,
    quick: bool = False,
    allow_load: bool = False,
    verify_tls: bool = True,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    network: Network | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> DiagnoseReport:
    """Diagnose ``url``. Raises :class:`lagscope.errors.LagscopeError` when it cannot be
    measured (exit codes as for ``lagscope probe``)."""
    opts = make_options(
        url,
        direct=direct,
        database=database,
        resolve=resolve,
        headers=headers,
        ipv4=ipv4,
        ipv6=ipv6,
        timeout_s=timeout_s,
        max_time_s=max_time_s,
        quick=quick,
        allow_load=allow_load,
        verify_tls=verify_tls,
        thresholds=thresholds,
    )
    return diagnose(opts, network=network, clock=clock, environ=environ, progress=progress)

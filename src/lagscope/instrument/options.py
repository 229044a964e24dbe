"""The instrumentation settings: one commented, typed table. Pure.

Django reads it from ``settings.LAGSCOPE`` (keys are the field names in upper case), the
WSGI middleware takes the same names as keyword arguments in lower case, and
docs/server-timing.md lists the same rows (:func:`settings_table_markdown`; a test keeps
them in step). The table is declared with :mod:`lagscope.settings_table`, so types come
from the annotations and bounds from the rows. Validation is strict: an unknown key or a
wrong type raises :class:`OptionsError`, which the Django system check reports as
``lagscope.E001`` and the middlewares turn into "no header" (they never break a response
over a settings mistake).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from lagscope.settings_table import SettingsError, build, markdown, rows, setting, validate

__all__ = [
    "UNTRUSTED_CHOICES",
    "InstrumentOptions",
    "OptionsError",
    "Otel",
    "Untrusted",
    "options_from_mapping",
    "settings_rows",
    "settings_table_markdown",
]

# What clients that are not trusted receive.
Untrusted = Literal["none", "total"]
UNTRUSTED_CHOICES: tuple[str, ...] = get_args(Untrusted)

# The OpenTelemetry bridge (lagscope.instrument.otel): "auto" adds the figures to the current
# recording span, or starts lagscope's own span when none records; "enrich" only adds to
# a recording span; "off" never touches OpenTelemetry.
Otel = Literal["auto", "enrich", "off"]

# The settings error of every table; the name stays for callers that catch it.
OptionsError = SettingsError


@dataclass(frozen=True)
class InstrumentOptions:
    # Master switch. False: no timing and no header at all (the middleware only passes
    # the request through).
    enabled: bool = setting(True, help="Instrument requests and add the header.")
    # "none" (the default) sends no header; "total" sends only the `total` metric, which
    # reveals how long the app took and nothing about its structure.
    untrusted: Untrusted = setting(
        "none", help='What untrusted clients get: "none" (no header) or "total".'
    )
    # Trust every client while settings.DEBUG is on (Django only).
    trust_debug: bool = setting(True, help="Trust every client while DEBUG is on (Django).")
    # Trust clients on 127.0.0.0/8 and ::1. Behind a local proxy the peer is always
    # loopback, so forwarded client addresses (X-Forwarded-For, X-Real-IP) must then be
    # trusted too; see docs/server-timing.md.
    trust_loopback: bool = setting(
        True, help="Trust loopback clients (and their forwarded clients)."
    )
    # Trust clients whose address is in settings.INTERNAL_IPS (Django) or in the
    # `internal_ips` argument (WSGI).
    trust_internal_ips: bool = setting(True, help="Trust clients listed in INTERNAL_IPS.")
    # A shared secret; a request whose `secret_header` equals it is trusted from anywhere.
    # Empty disables it. Never echoed anywhere.
    secret: str = setting("", help="Shared secret that makes any client trusted (empty: off).")
    # The request header that carries the secret.
    secret_header: str = setting("X-Lagscope-Token", help="Request header carrying the secret.")
    # The request header a front proxy sets to its request-start time (nginx:
    # proxy_set_header X-Request-Start "t=${msec}";). Empty disables queue time.
    queue_header: str = setting(
        "X-Request-Start", help="Proxy request-start header for queue time (empty: off)."
    )
    # A request-start time further than this from our clock (seconds) is a clock problem,
    # not a queue, and is ignored.
    max_queue_s: float = setting(
        600.0,
        unit="s",
        help="Ignore request-start times further off than this (s).",
        above=0,
        maximum=86400,
    )
    # Peer addresses remembered for connection identity when the server provides no
    # connection object; bounds memory at roughly 150 bytes per entry.
    connection_table_size: int = setting(
        4096,
        help="Peer addresses remembered for connection identity.",
        minimum=1,
        maximum=1_000_000,
    )
    # A peer address idle for longer than this (seconds) counts as a new connection;
    # 300 s is where browsers drop idle sockets.
    connection_idle_s: float = setting(
        300.0,
        unit="s",
        help="An address idle this long (s) counts as new.",
        above=0,
        maximum=86400,
    )

    # Only acts when opentelemetry-api is installed; spans and metrics reach a backend
    # only when an SDK is configured (docs/django.md).
    otel: Otel = setting(
        "auto",
        help='OpenTelemetry: "auto" (enrich the current span, else start one), '
        '"enrich" (only a recording span) or "off".',
    )

    # Profile mode (docs/server-timing.md): a trusted client's request carrying
    # `X-Lagscope-Profile: 1` is sampled with pyinstrument (the `profile` extra) and the
    # response carries a compact profile. Off by default because a profiled request runs
    # slower; Django's DEBUG allows it as well. Untrusted clients are never profiled.
    profile: bool = setting(
        False,
        help="Profile trusted requests that ask (`X-Lagscope-Profile: 1`); DEBUG allows it "
        "too (Django).",
    )

    def __post_init__(self) -> None:
        validate(self, style="key", phase="LAGSCOPE")


def settings_rows() -> tuple[tuple[str, object, str], ...]:
    """(Django setting key, default, one-line doc) for every option, in table order."""
    return tuple((row.key, row.default, row.spec.help) for row in rows(InstrumentOptions))


def settings_table_markdown() -> str:
    """The settings table as docs/server-timing.md shows it (a test compares the two)."""
    columns = [
        ("key (`LAGSCOPE[...]`)", "key"),
        ("default", "default_repr"),
        ("range", "range"),
        ("meaning", "help"),
    ]
    return markdown(InstrumentOptions, columns=columns)


def options_from_mapping(raw: object) -> InstrumentOptions:
    """Validate ``raw`` (upper- or lower-case keys) against the table."""
    if not isinstance(raw, Mapping):
        raise OptionsError(f"LAGSCOPE must be a dict, got {type(raw).__name__}", "LAGSCOPE")
    values = {str(key): value for key, value in raw.items()}
    options, _ = build(InstrumentOptions, values, style="key", phase="LAGSCOPE", what="key")
    return options

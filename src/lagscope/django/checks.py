"""System checks ``lagscope.*``: settings that cost latency, each backed by a measured or
cited fact (docs/server-timing.md and docs/diagnose.md give the sources).

Every check reads only settings (no database access), so it runs under plain
``manage.py check``. Ids are stable:

* E001 ``LAGSCOPE`` setting invalid
* W001 CONN_MAX_AGE=0 on a network database without a pool
* W002 persistent connections without CONN_HEALTH_CHECKS
* E003 a pool together with CONN_MAX_AGE != 0
* W004 database HOST 'localhost' (or empty, for PostgreSQL on Windows)
* W005 PostgreSQL on loopback without gssencmode=disable (an empty HOST is loopback TCP
  on Windows)
* W006 the lagscope middleware is not first
* W007 CommonMiddleware missing
* W008 the app is installed but its middleware is not

The database checks are rules over one database each, made into checks by
``_each_database``; the platform is a keyword parameter of those checks (``sys.platform``
by default), so the Windows rules are tested anywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from lagscope.addresses import is_localhost_name, is_loopback_literal
from lagscope.django.conf import get_options
from lagscope.instrument.options import OptionsError

__all__ = [
    "ALL_CHECKS",
    "MIDDLEWARE_PATH",
    "check_common_middleware",
    "check_conn_health_checks",
    "check_conn_max_age",
    "check_gssencmode",
    "check_localhost",
    "check_middleware_first",
    "check_middleware_installed",
    "check_pool_with_max_age",
    "check_settings",
]

MIDDLEWARE_PATH = "lagscope.django.middleware.ServerTimingMiddleware"
COMMON_MIDDLEWARE = "django.middleware.common.CommonMiddleware"

_Check = Callable[..., list[CheckMessage]]


def _network_databases() -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(alias, settings) for every database reached over a socket (not SQLite)."""
    databases: Mapping[str, Mapping[str, Any]] = settings.DATABASES
    for alias, db in databases.items():
        engine = str(db.get("ENGINE", ""))
        if engine and "sqlite" not in engine and "dummy" not in engine:
            yield alias, db


def _is_postgresql(db: Mapping[str, Any]) -> bool:
    return "postgresql" in str(db.get("ENGINE", "")) or "postgis" in str(db.get("ENGINE", ""))


def _has_pool(db: Mapping[str, Any]) -> bool:
    options = db.get("OPTIONS") or {}
    return _is_postgresql(db) and bool(options.get("pool"))


def _conn_max_age(db: Mapping[str, Any]) -> object:
    # Django's default is 0 when the key is absent.
    return db.get("CONN_MAX_AGE", 0)


def check_settings(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    try:
        get_options()
    except OptionsError as exc:
        return [
            Error(
                f"settings.LAGSCOPE is invalid: {exc.message}",
                hint="See the settings table in docs/server-timing.md.",
                id="lagscope.E001",
            )
        ]
    return []


_Rule = Callable[[str, Mapping[str, Any], str], "CheckMessage | None"]


def _each_database(rule: _Rule) -> _Check:
    """A system check from a rule over one network database: ``rule(alias, settings,
    platform)`` returns its message or None. ``platform`` is ``sys.platform`` unless the
    caller passes one."""

    def check(
        app_configs: object = None, *, platform: str = sys.platform, **kwargs: object
    ) -> list[CheckMessage]:
        found = (rule(alias, db, platform) for alias, db in _network_databases())
        return [message for message in found if message is not None]

    # Named like the rule, but not functools.wraps: Django reads the check's own signature
    # (it must take **kwargs), and wraps would point it at the rule's.
    check.__name__, check.__qualname__ = rule.__name__, rule.__qualname__
    check.__doc__ = rule.__doc__
    return check


@_each_database
def check_conn_max_age(alias: str, db: Mapping[str, Any], platform: str) -> CheckMessage | None:
    if _conn_max_age(db) != 0 or _has_pool(db):
        return None
    return Warning(
        f"DATABASES[{alias!r}] opens a new database connection for every request "
        "(CONN_MAX_AGE=0 and no pool).",
        hint=(
            "Set CONN_MAX_AGE=None (or a number of seconds) with "
            "CONN_HEALTH_CHECKS=True, or use a pool (PostgreSQL, Django 5.1+: "
            'OPTIONS={"pool": True}). Each request then pays a connect (a rule of '
            "thumb: 5-15 ms with PostgreSQL on loopback), far more where security "
            "software taxes each new connection."
        ),
        id="lagscope.W001",
    )


@_each_database
def check_conn_health_checks(
    alias: str, db: Mapping[str, Any], platform: str
) -> CheckMessage | None:
    if _conn_max_age(db) == 0 or db.get("CONN_HEALTH_CHECKS", False):
        return None
    return Warning(
        f"DATABASES[{alias!r}] keeps connections open (CONN_MAX_AGE="
        f"{_conn_max_age(db)!r}) without CONN_HEALTH_CHECKS.",
        hint=(
            "Set CONN_HEALTH_CHECKS=True. Without it a connection the server or a "
            "firewall dropped is found broken by the next request on its thread, "
            "which fails with HTTP 500: one failed request per thread that held "
            "such a connection (Django opens a new one after the error)."
        ),
        id="lagscope.W002",
    )


@_each_database
def check_pool_with_max_age(
    alias: str, db: Mapping[str, Any], platform: str
) -> CheckMessage | None:
    if not _has_pool(db) or _conn_max_age(db) == 0:
        return None
    return Error(
        f"DATABASES[{alias!r}] configures a pool together with CONN_MAX_AGE={_conn_max_age(db)!r}.",
        hint=(
            "Django refuses this combination at the first connect "
            '("Pooling doesn\'t support persistent connections"). Set '
            "CONN_MAX_AGE=0: the pool keeps the connections."
        ),
        id="lagscope.E003",
    )


def _effective_host(db: Mapping[str, Any], platform: str) -> str:
    """The host the driver connects to, as far as settings say.

    An empty HOST means PostgreSQL's Unix socket on POSIX, but libpq on Windows has no Unix
    sockets: there it connects over TCP to ``localhost``, with the same ::1-first lookup.
    """
    host = str(db.get("HOST") or "").strip()
    if not host and platform == "win32" and _is_postgresql(db):
        return "localhost"
    return host


def _host_shown(db: Mapping[str, Any]) -> str:
    host = str(db.get("HOST") or "").strip()
    return repr(host) if host else "empty (on Windows: TCP to 'localhost')"


@_each_database
def check_localhost(alias: str, db: Mapping[str, Any], platform: str) -> CheckMessage | None:
    if _effective_host(db, platform).lower() != "localhost":
        return None
    return Warning(
        f"DATABASES[{alias!r}]['HOST'] is {_host_shown(db)}.",
        hint=(
            "Use '127.0.0.1'. 'localhost' costs a name lookup per connect and, "
            "where it resolves to ::1 first and the server listens on IPv4 only, "
            "a fallback: about 1 s per connect on Windows (python-arango #18, "
            "PyMySQL #309)."
        ),
        id="lagscope.W004",
    )


def _is_loopback_without_dns(host: str) -> bool:
    # Checks read settings only: a name other than localhost is not resolved here.
    return is_localhost_name(host) or is_loopback_literal(host)


@_each_database
def check_gssencmode(alias: str, db: Mapping[str, Any], platform: str) -> CheckMessage | None:
    host = _effective_host(db, platform)
    if not _is_postgresql(db) or not _is_loopback_without_dns(host):
        return None
    options = db.get("OPTIONS") or {}
    if options.get("gssencmode") == "disable":
        return None
    return Warning(
        f"DATABASES[{alias!r}] connects to PostgreSQL on loopback without gssencmode=disable.",
        hint=(
            'Add OPTIONS={"gssencmode": "disable"}. Where Kerberos is configured '
            "libpq first tries GSSAPI encryption, about 100 ms per connect "
            "(111 ms vs 3.2 ms, psycopg2 #1049); loopback gains nothing from it."
        ),
        id="lagscope.W005",
    )


def _middleware() -> Sequence[str]:
    return list(getattr(settings, "MIDDLEWARE", None) or [])


def check_middleware_first(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    middleware = _middleware()
    if MIDDLEWARE_PATH in middleware and middleware[0] != MIDDLEWARE_PATH:
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is not the first entry in MIDDLEWARE.",
                hint=(
                    "Move it to the top. It can only time what runs inside it: the middleware "
                    f"before it ({', '.join(middleware[: middleware.index(MIDDLEWARE_PATH)])}) "
                    "is counted as time outside the app."
                ),
                id="lagscope.W006",
            )
        ]
    return []


def check_common_middleware(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    if COMMON_MIDDLEWARE not in _middleware():
        return [
            Warning(
                f"{COMMON_MIDDLEWARE} is not in MIDDLEWARE.",
                hint=(
                    "Add it. It sets Content-Length; without one, waitress sends a chunked "
                    "response and closes the keep-alive connection after every response, so "
                    "each request pays a new connection (verified with waitress 3.0.2)."
                ),
                id="lagscope.W007",
            )
        ]
    return []


def check_middleware_installed(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    if MIDDLEWARE_PATH not in _middleware():
        return [
            Warning(
                f"lagscope.django is installed but {MIDDLEWARE_PATH} is not in MIDDLEWARE.",
                hint="Add it as the first entry of MIDDLEWARE to get the Server-Timing header.",
                id="lagscope.W008",
            )
        ]
    return []


ALL_CHECKS: tuple[_Check, ...] = (
    check_settings,
    check_conn_max_age,
    check_conn_health_checks,
    check_pool_with_max_age,
    check_localhost,
    check_gssencmode,
    check_middleware_first,
    check_common_middleware,
    check_middleware_installed,
)

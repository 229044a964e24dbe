"""The one database connection string parser: libpq's own (through psycopg), for every form
libpq takes (``postgresql://`` URLs, ``key=value`` strings) and every command that takes one
(``diagnose --database``, ``demo --database``, the reference app's database setting).

A parse error never quotes the string: libpq's message quotes the part it stumbled on,
which may be the password, so every quoted part is left out (:func:`parse`). What a string
may show is :func:`lagscope.redact.dsn`'s business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lagscope.errors import ExitCode, LagscopeError

__all__ = ["Dsn", "DsnError", "conninfo", "django_settings", "is_sqlite", "parse"]

# libpq's messages quote these separators; anything else they quote is the user's text.
_SEPARATORS = frozenset({"=", ":", "/", "]", "@", "?", "&"})
_QUOTED = re.compile(r'"([^"]*)"')


class DsnError(LagscopeError):
    """A connection string that cannot be used; the message never holds any part of it."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            "database",
            f"invalid connection string (not shown: it may hold a password): {reason}",
            ExitCode.USAGE,
        )


def _reason(message: str) -> str:
    first = (message.strip().splitlines() or [""])[0]
    masked = _QUOTED.sub(lambda m: m.group(0) if m.group(1) in _SEPARATORS else '"..."', first)
    return masked or "libpq cannot read it"


@dataclass(frozen=True)
class Dsn:
    """A parsed connection string: libpq's keywords and values, the password included."""

    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def password(self) -> str | None:
        return self.params.get("password") or None

    @property
    def host(self) -> str:
        return self.params.get("host", "")

    @property
    def port(self) -> int:
        """The first port (libpq's default 5432 when none or not a number)."""
        first = self.params.get("port", "").split(",")[0]
        return int(first) if first.isdigit() and 0 < int(first) < 65536 else 5432

    def replace(self, **changes: str | None) -> Dsn:
        """These parameters changed (``None`` removes one)."""
        params = {**self.params, **{k: v for k, v in changes.items() if v is not None}}
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
        return Dsn(params)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        return dict(self.params)


def is_sqlite(value: str) -> bool:
    """``sqlite`` (the demo's switch) or a ``sqlite:///PATH`` URL: not a libpq string."""
    lowered = value.strip().lower()
    return lowered == "sqlite" or lowered.startswith("sqlite:")


def parse(value: str, *, need_dbname: bool = False) -> Dsn:
    """Read a connection string without connecting. Raises :class:`DsnError` (exit 2), also
    when ``need_dbname`` and it names no database."""
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise LagscopeError(
            "database",
            "a PostgreSQL database needs psycopg: pip install 'lagscope[postgres]'",
            ExitCode.ENVIRONMENT,
        ) from None
    if any(ch in value for ch in "\x00\r\n"):
        raise DsnError("it contains control characters")
    scheme, sep, _rest = value.strip().partition("://")
    if sep and scheme.lower() not in ("postgresql", "postgres"):
        # libpq would only say "missing =": name what it does read.
        raise DsnError("only postgresql:// URLs and key=value strings name a PostgreSQL database")
    try:
        params = conninfo_to_dict(value)
    except (Error, ValueError) as exc:
        raise DsnError(_reason(str(exc))) from None
    parsed = Dsn({k: str(v) for k, v in params.items() if v is not None})
    for port in parsed.params.get("port", "").split(","):
        # libpq reads a bad port only when it connects; the run should not start first.
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise DsnError("a port is not a number in 1..65535")
    if need_dbname and not parsed.params.get("dbname"):
        raise DsnError("no database name (postgresql://HOST/NAME or dbname=NAME)")
    return parsed


def conninfo(params: Mapping[str, str]) -> str:
    """Parameters as a libpq ``key=value`` string (values quoted where libpq needs it)."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo("", **params)


def django_settings(dsn: Dsn) -> dict[str, Any]:
    """A Django ``DATABASES`` entry (PostgreSQL) connecting as ``dsn`` says: the named
    parameters in their Django keys, the rest in ``OPTIONS``."""
    named = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST"}
    out: dict[str, Any] = {"ENGINE": "django.db.backends.postgresql"}
    options: dict[str, str] = {}
    for key, value in dsn.params.items():
        if key in named:
            out[named[key]] = value
        elif key == "port":
            out["PORT"] = value
        else:
            options[key] = value
    out["OPTIONS"] = options
    return out

"""The one redactor: secrets are found by a rule and replaced by ``***`` in every output.

The rule is about names, not a list of known headers: a name is secret when it contains
``auth``, ``token``, ``secret``, ``key``, ``session``, ``csrf``, ``password`` or ``cookie``
(any case, so ``X-Auth-Token``, ``X-CSRFToken``, ``X-Amz-Security-Token`` and
``sessionid`` all count). It applies to

- header values (:func:`headers`, and ``-H NAME: VALUE`` arguments);
- URLs (:func:`url`): the password in the userinfo, and the values of query parameters whose
  names are secret;
- database connection strings (:func:`dsn`): shown rebuilt from their parsed parameters, the
  secret ones replaced; a string that does not parse is replaced whole, since any part of
  it may be the password;
- a saved command line (:func:`command_line`): each argument by the rules above;
- free text that may quote a known secret (:func:`text`, for driver error messages);
- a saved report as loaded (:func:`document`): files written before a rule existed show,
  once loaded, what a new run's would.

Everything written for people or to a file (terminal, JSON, HTML, HAR, error lines) goes
through these before it leaves the measuring code; nothing else hides secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "SECRET_WORDS",
    "command_line",
    "document",
    "dsn",
    "dsn_params",
    "headers",
    "is_secret_name",
    "text",
    "url",
]

REDACTED = "***"

# Parts of a name that mark its value as a credential (header names, URL query parameters,
# connection parameters). Substrings, so every spelling and prefix of them counts.
SECRET_WORDS = ("auth", "token", "secret", "key", "session", "csrf", "password", "cookie")

# Options whose value is a database connection string, in the commands that take one.
_DSN_FLAGS = ("--database",)
_HEADER_FLAGS = ("-H", "--header")
# Text that may hold a URL with credentials: scheme://userinfo@...
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or connection parameter named ``name`` carries a
    credential."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def headers(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The ``(name, value)`` pairs with every secret value replaced."""
    return tuple((name, REDACTED if is_secret_name(name) else value) for name, value in pairs)


def _query(query: str) -> str:
    out = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        out.append(f"{name}={REDACTED}" if eq and is_secret_name(unquote(name)) else pair)
    return "&".join(out)


# Schemes whose userinfo without a password is a role name (libpq takes the password
# apart), kept because the name tells which login failed.
_NAMED_USER_SCHEMES = frozenset({"postgres", "postgresql"})


def url(value: str) -> str:
    """``value`` with the userinfo's password (a userinfo without one, whole, except a
    database URL's role name) and secret query values replaced.

    Plain string work, no URL parser: a URL that a parser would refuse (an unclosed ``[``,
    a bad port) is redacted all the same."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return value
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    userinfo, at_sign, host = authority.rpartition("@")
    if at_sign and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"
    elif at_sign and scheme.lower() not in _NAMED_USER_SCHEMES:
        # A userinfo with no password is a bearer token as often as a name
        # (https://TOKEN@host/): masked whole.
        authority = f"{REDACTED}@{host}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hash_sign, fragment = query.partition("#")
        tail = f"{path}?{_query(query)}{hash_sign}{fragment}"
    return f"{scheme}://{authority}{tail}"


# Secrets at least this long are masked wherever they occur in free text.
_SUBSTRING_MIN_CHARS = 4


def text(value: str, secrets: Iterable[str | None] = ()) -> str:
    """Free text (an error message) with each known secret, every URL's credentials and
    every ``password=...``-style assignment replaced."""
    for secret in secrets:
        if not secret:
            continue
        if len(secret) >= _SUBSTRING_MIN_CHARS:
            value = value.replace(secret, REDACTED)
        else:
            # A very short secret is masked only where it stands alone: inside words it
            # would turn "expired" into "e***pired" and hide the message, not a secret.
            value = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", REDACTED, value)
    out, pos = [], 0
    for m in _URL_IN_TEXT.finditer(value):  # URLs by the URL rule, the rest by assignments
        out += [_ASSIGNMENT.sub(_assignment, value[pos : m.start()]), url(m.group(0))]
        pos = m.end()
    out.append(_ASSIGNMENT.sub(_assignment, value[pos:]))
    return "".join(out)


# NAME=VALUE in free text or a key/value connection string; VALUE quoted ('...', with
# backslash escapes) or bare (backslash escapes a space, as libpq reads it).
_ASSIGNMENT = re.compile(r"([A-Za-z_][\w-]*)(\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s'\\])+)")


def _assignment(m: re.Match[str]) -> str:
    if is_secret_name(m.group(1)):
        # A double quote closing an enclosing value (desc="token=...") is not the secret's.
        close = '"' if m.group(3).endswith('"') and not m.group(3).startswith('"') else ""
        return f"{m.group(1)}{m.group(2)}{REDACTED}{close}"
    value = m.group(3)
    if "=" not in value:
        return m.group(0)
    # A harmless name's value may hold an assignment of its own (desc="api_token=..."):
    # looked into, past any quote or separator in front of it.
    return f"{m.group(1)}{m.group(2)}{_ASSIGNMENT.sub(_assignment, value)}"


def dsn_params(params: Mapping[str, object]) -> str:
    """Connection parameters as a libpq string to show, secret ones replaced."""
    from lagscope.dsn import conninfo

    return conninfo(
        {k: REDACTED if is_secret_name(k) else str(v) for k, v in params.items() if v is not None}
    )


def dsn(value: str) -> str:
    """A database connection string as it may be shown: rebuilt from its parameters with
    the secret ones replaced, or ``***`` whole when it does not parse (then any part
    of it may be the password). ``sqlite`` and ``sqlite:///PATH`` are shown as given."""
    from lagscope.dsn import DsnError, is_sqlite, parse

    if is_sqlite(value):
        return value
    try:
        return dsn_params(parse(value).params)
    except DsnError:
        return REDACTED


def _header_arg(value: str) -> str:
    name, sep, _ = value.partition(":")
    return f"{name}: {REDACTED}" if sep and is_secret_name(name.strip()) else value


def command_line(argv: Iterable[str]) -> tuple[str, ...]:
    """A command line fit to save and show: secret ``-H`` values, URL credentials and
    ``--database`` passwords replaced."""
    out: list[str] = []
    takes: str | None = None  # what the previous flag says this argument is
    for arg in argv:
        if takes == "header":
            out.append(_header_arg(arg))
        elif takes == "dsn":
            out.append(dsn(arg))
        elif arg in _HEADER_FLAGS or arg in _DSN_FLAGS:
            out.append(arg)
            takes = "header" if arg in _HEADER_FLAGS else "dsn"
            continue
        elif arg.startswith("--header="):
            out.append("--header=" + _header_arg(arg[len("--header=") :]))
        elif arg.startswith("-H") and len(arg) > 2:
            out.append("-H" + _header_arg(arg[2:]))
        elif any(arg.startswith(flag + "=") for flag in _DSN_FLAGS):
            flag, _, value = arg.partition("=")
            out.append(f"{flag}={dsn(value)}")
        else:
            out.append(text(arg))
        takes = None
    return tuple(out)


_Doc = TypeVar("_Doc")

# Keys whose string value is a database connection string, in saved reports' options.
_DSN_KEYS = frozenset({"database"})
# Keys whose list holds a command line (argv).
_ARGV_KEYS = frozenset({"command", "command_line"})


def _pairs(key: str | None) -> bool:
    """Whether lists under ``key`` hold [name, value] pairs (headers, the demo's settings)."""
    return key is not None and (key.endswith("headers") or key == "settings")


def _loaded_text(value: str, key: str | None) -> str:
    if value and key is not None and is_secret_name(key):
        return REDACTED
    if "=" not in value and "://" not in value:
        return value  # nothing text() or dsn() could find: most strings of a big file
    if key in _DSN_KEYS:
        return dsn(value)
    return text(value)


def document(data: _Doc) -> _Doc:
    """A saved report's parsed JSON with every secret the rules find replaced, in place:
    for files written before a rule existed, so that loading and rendering them shows
    what a new run would. Each string goes through :func:`text` (URLs' userinfo and secret
    query values, ``NAME=VALUE`` secrets); a string under a secret-named key, and the value
    of a ``[name, value]`` pair with a secret name (headers, settings), is replaced; a
    ``command``/``command_line`` list goes through :func:`command_line`, and an options
    ``database`` through :func:`dsn`. Lists holding only numbers, booleans and nulls (the
    columns of a big file) are passed over whole. Iterative: nesting cannot exhaust the
    stack."""
    stack: list[tuple[Any, str | None]] = [(data, None)]
    while stack:
        node, key = stack.pop()
        named = type(node) is dict
        if not named:
            kinds = set(map(type, node))
            if not kinds & {str, dict, list}:
                continue
            if key in _ARGV_KEYS and kinds == {str}:
                node[:] = command_line(node)
                continue
            if _pairs(key) and len(node) == 2 and kinds == {str}:
                if node[1] and is_secret_name(node[0]):
                    node[1] = REDACTED  # a [name, value] pair: a header, a setting
                else:  # a harmless name may still carry a URL or NAME=VALUE secret
                    node[1] = _loaded_text(node[1], None)
                continue
        entries: Iterable[tuple[Any, Any]] = node.items() if named else enumerate(node)
        for slot, value in entries:
            if type(value) is str:
                new = _loaded_text(value, slot if named else None)
                if new is not value:
                    node[slot] = new  # a value replaced, no key added: iterating stays valid
            elif type(value) is dict or type(value) is list:
                stack.append((value, slot if named else key))
    return data

"""The one way lagscope declares settings: a row per field, and everything derived from it.

Every command's settings are a frozen dataclass whose fields are declared with
:func:`setting` (a constant default) or :func:`derived` (a default computed from the
:class:`Host` facts and the rows above it). A row carries its unit, its reason and its
bounds; its type comes from the field's annotation (``int``, ``float``, ``bool``, ``str``,
a ``Literal`` of strings, any of them ``| None``). From that one declaration come:

* validation (:func:`validate`, called in each table's ``__post_init__``, so the Python API
  refuses what the CLI refuses);
* the click options (:func:`click_options`);
* the docs tables (:func:`markdown`, one or several tables under one header; a test
  checks that docs/*.md contain them);
* merging user values over the defaults (:func:`build`).

One rule for every number, so a new option cannot miss it: a float must be finite and is
at most :data:`FLOAT_MAX` unless its row says less; an integer is at most :data:`INT_MAX`
(a C ``int``, what socket and select calls take) unless its row says less.

Every rejection is a :class:`SettingsError`: a :class:`~lagscope.errors.LagscopeError` with
exit code 2 (one line at the CLI boundary) that is also a :class:`ValueError` for Python
callers. Pure: no I/O; click is imported only when options are generated.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from lagscope.errors import ExitCode, LagscopeError

__all__ = [
    "FLAG_COLUMNS",
    "FLOAT_MAX",
    "INT_MAX",
    "JUST_ABOVE_BROWSER_IDLE_S",
    "Built",
    "Column",
    "Host",
    "Row",
    "SettingsError",
    "Sofar",
    "argparse_options",
    "build",
    "check_values",
    "click_options",
    "derived",
    "markdown",
    "rows",
    "setting",
    "validate",
]

T = TypeVar("T")
V = TypeVar("V", bound="bool | int | float | str | None")
F = TypeVar("F", bound=Callable[..., object])

# A C int: listen() backlogs, select() sizes and most socket options take one, and Python
# raises OverflowError past it.
INT_MAX = 2**31 - 1
# Below Windows' threading.TIMEOUT_MAX (4 294 967 s), so any float setting can be used as
# a timeout or a sleep without OverflowError; 11.6 days is past any useful value.
FLOAT_MAX = 1_000_000.0
# Browsers drop an idle keep-alive connection after 300 s. A server idle timeout just above
# it lets the client close first, so nobody sends on a socket the other side is closing.
# Shared by serve's channel_timeout and nginx-config's client and server-side rows.
JUST_ABOVE_BROWSER_IDLE_S = 310


class SettingsError(LagscopeError, ValueError):
    """A value that does not fit its row; the message names the flag or key."""

    def __init__(self, message: str, phase: str = "config") -> None:
        super().__init__(phase, message, ExitCode.USAGE)


def _version(dist: str) -> tuple[int, int] | None:
    # Imported here: importlib.metadata costs ~20 ms to import, and only Host.current()
    # (serve's machine-dependent defaults) needs it.
    from importlib import metadata

    try:
        text = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    parts = text.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Host:
    """The machine facts that defaults may depend on; tests pass a made-up one."""

    cpu_count: int
    platform: str  # sys.platform
    django_version: tuple[int, int] | None = None
    psycopg_version: tuple[int, int] | None = None

    @classmethod
    def current(cls) -> Host:
        # Versions from installed metadata: importing Django here would cost ~100 ms.
        return cls(
            cpu_count=os.cpu_count() or 1,
            platform=sys.platform,
            django_version=_version("django"),
            psycopg_version=_version("psycopg"),
        )


Kind = Literal["bool", "int", "float", "str", "choice"]
Label = Literal["flag", "key"]
Value = bool | int | float | str | None


class Sofar:
    """The values of the rows above, for a :func:`derived` default. Typed getters, so a
    derivation reads ``sofar.int("db_connections")`` instead of casting."""

    def __init__(self, values: Mapping[str, Value]) -> None:
        self._values = values

    def int(self, name: str) -> int:
        value = self._values[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} is {value!r}, not an int")
        return value

    def bool(self, name: str) -> bool:
        value = self._values[name]
        if not isinstance(value, bool):
            raise TypeError(f"{name} is {value!r}, not a bool")
        return value

    def str(self, name: str) -> str:
        value = self._values[name]
        if not isinstance(value, str):
            raise TypeError(f"{name} is {value!r}, not a str")
        return value


Derive = Callable[[Sofar, Host], tuple[Value, str]]


@dataclass(frozen=True)
class _Spec:
    """What :func:`setting` or :func:`derived` declared for one field (its metadata)."""

    help: str
    unit: str
    why: str
    minimum: float | None
    maximum: float | None
    above: float | None
    flag: str | None
    shown: str | None
    derive: Derive | None
    extra: Mapping[str, str]
    cli: bool
    metavar: str | None = None  # the value's name in --help (URL, DSN, PATH)
    short: str | None = None  # a one-letter flag beside the long one (-X)


_KEY = "lagscope.setting"


def setting(
    default: T,
    *,
    help: str,
    unit: str = "",
    why: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    flag: str | None = None,
    shown: str | None = None,
    extra: Mapping[str, str] | None = None,
    cli: bool = True,
    metavar: str | None = None,
    short: str | None = None,
) -> T:
    """A row with a constant default.

    ``minimum``/``maximum`` are inclusive, ``above`` is an exclusive lower bound (timeouts).
    ``flag`` overrides the CLI flag (default ``--name-with-dashes``); ``shown`` how the docs
    and ``--help`` show the default; ``extra`` holds table-specific columns (nginx's
    directive); ``cli=False`` keeps the row off the command line; ``metavar`` names the
    value in ``--help`` (``URL``); ``short`` adds a one-letter flag (``-X``).
    """
    spec = _Spec(
        help,
        unit,
        why,
        minimum,
        maximum,
        above,
        flag,
        shown,
        None,
        dict(extra or {}),
        cli,
        metavar,
        short,
    )
    field: T = dataclasses.field(default=default, metadata={_KEY: spec})
    return field


def derived(
    derive: Callable[[Sofar, Host], tuple[V, str]],
    *,
    shown: str,
    help: str,
    unit: str = "",
    why: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    flag: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> V:
    """A row whose default is ``derive(sofar, host) -> (value, why)``, computed by
    :func:`build` from the rows above it and the :class:`Host`. ``shown`` describes the
    rule for docs and ``--help``. The dataclass must be ``kw_only``: the field has no
    default of its own."""
    spec = _Spec(
        help, unit, why, minimum, maximum, above, flag, shown, derive, dict(extra or {}), True
    )
    field: V = dataclasses.field(metadata={_KEY: spec})
    return field


@dataclass(frozen=True)
class Row:
    """One setting, as the generators see it."""

    name: str
    kind: Kind
    optional: bool
    choices: tuple[str, ...]
    default: Value
    spec: _Spec
    # The CLI flag (``--name-with-dashes`` unless the row names one) and the Django-style
    # key (``NAME``); fixed when the rows are read, since checks name them.
    flag: str
    key: str

    def label(self, style: Label) -> str:
        return self.flag if style == "flag" else self.key

    @property
    def shown_default(self) -> str:
        """The default as docs and ``--help`` show it: ``on``, ``310 s``, ``waitress``."""
        if self.spec.shown is not None:
            return self.spec.shown
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "on" if value else "off"
        text = _number(value) if isinstance(value, (int, float)) else value
        return f"{text} {self.spec.unit}" if self.spec.unit else text

    @property
    def range(self) -> str:
        """The accepted values as docs show them: ``0–65535``, ``> 0, ≤ 3600``."""
        if self.kind == "choice":
            return ", ".join(self.choices)
        if self.kind not in ("int", "float"):
            return ""
        spec = self.spec
        ceiling = spec.maximum
        if ceiling is None:
            ceiling = INT_MAX if self.kind == "int" else FLOAT_MAX
        top = _number(ceiling)
        if spec.above is not None:
            return f"> {_number(spec.above)}, ≤ {top}"
        if spec.minimum is not None:
            return f"{_number(spec.minimum)}–{top}"
        return f"≤ {top}"

    def check(self, value: object, style: Label = "flag", phase: str = "config") -> Value:
        """``value`` validated against the row (an int given for a float becomes float)."""

        def bad(why: str) -> SettingsError:
            return SettingsError(f"{self.label(style)} {why}", phase)

        if value is None:
            if self.optional:
                return None
            raise bad("must be given")
        if self.kind == "choice":
            if value not in self.choices:
                raise bad(f"must be one of {', '.join(self.choices)}, got {value!r}")
            return str(value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad(f"must be bool, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad(f"must be str, got {value!r}")
            return value
        # bool is an int subclass; a True where a number belongs is a mistake.
        number: int | float
        if self.kind == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(f"must be int, got {value!r}")
            number = value
            ceiling = INT_MAX if self.spec.maximum is None else self.spec.maximum
        else:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise bad(f"must be int or float, got {value!r}")
            number = float(value)
            if not math.isfinite(number):
                raise bad(f"must be a finite number, got {value!r}")
            ceiling = FLOAT_MAX if self.spec.maximum is None else self.spec.maximum
        spec = self.spec
        if spec.minimum is not None and number < spec.minimum:
            raise bad(f"must be at least {_number(spec.minimum)}, got {value!r}")
        if spec.above is not None and number <= spec.above:
            raise bad(f"must be above {_number(spec.above)}, got {value!r}")
        if number > ceiling:
            raise bad(f"must be at most {_number(ceiling)}, got {value!r}")
        return number

    def parse(self, value: object, style: Label = "flag", phase: str = "config") -> Value:
        """Like :meth:`check`, but a string is first read as the row's type (values from
        JSON, environment or a config file)."""
        if isinstance(value, str) and self.kind in ("int", "float", "bool"):
            text = value.strip()
            if self.kind == "bool":
                lowered = text.lower()
                if lowered not in _BOOL_WORDS:
                    raise SettingsError(f"{self.label(style)} must be true or false", phase)
                return _BOOL_WORDS[lowered]
            try:
                parsed: int | float = int(text) if self.kind == "int" else float(text)
            except ValueError:
                noun = "an integer" if self.kind == "int" else "a number"
                raise SettingsError(
                    f"{self.label(style)} needs {noun}, not {value!r}", phase
                ) from None
            return self.check(parsed, style, phase)
        return self.check(value, style, phase)


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True}
_BOOL_WORDS.update({"false": False, "0": False, "no": False, "off": False})


def _number(value: float) -> str:
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e16):
        return str(int(value))
    return f"{value:g}"


def _kind(name: str, hint: object) -> tuple[Kind, bool, tuple[str, ...]]:
    optional = False
    if get_origin(hint) in (Union, types.UnionType):
        args = get_args(hint)
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) != 1:
            raise TypeError(f"setting {name}: unsupported type {hint!r}")
        hint = rest[0]
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        if not all(isinstance(c, str) for c in choices):
            raise TypeError(f"setting {name}: Literal choices must be strings")
        return "choice", optional, tuple(str(c) for c in choices)
    for kind, python_type in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if hint is python_type:
            return kind, optional, ()  # type: ignore[return-value]
    raise TypeError(f"setting {name}: unsupported type {hint!r}")


_ROWS: dict[type, tuple[Row, ...]] = {}


def rows(cls: type) -> tuple[Row, ...]:
    """The rows of a settings dataclass, in declaration order (fields without
    :func:`setting`/:func:`derived` are not rows)."""
    cached = _ROWS.get(cls)
    if cached is None:
        cached = _ROWS[cls] = _read_rows(cls)
    return cached


def _read_rows(cls: type) -> tuple[Row, ...]:
    hints = get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(_KEY)
        if not isinstance(spec, _Spec):
            continue
        kind, optional, choices = _kind(f.name, hints[f.name])
        default = f.default
        if default is dataclasses.MISSING:
            if spec.derive is None:
                raise TypeError(f"setting {f.name} has no default")
            default = None
        if not (default is None or isinstance(default, (bool, int, float, str))):
            raise TypeError(f"setting {f.name}: unsupported default {default!r}")
        flag = spec.flag or "--" + f.name.replace("_", "-")
        found.append(Row(f.name, kind, optional, choices, default, spec, flag, f.name.upper()))
    return tuple(found)


def validate(instance: object, *, style: Label = "flag", phase: str = "config") -> None:
    """Check every row of a settings dataclass instance; call it from ``__post_init__``.

    An int given for a float row is stored as float, so the field's type holds.
    """
    for row in rows(type(instance)):
        value = getattr(instance, row.name)
        checked = row.check(value, style, phase)
        if checked is not value:
            object.__setattr__(instance, row.name, checked)


@dataclass(frozen=True)
class Built:
    """What :func:`build` decided: the values and, for each, why (``"given"`` for values
    the caller set)."""

    values: Mapping[str, Value]
    why: Mapping[str, str]
    given: frozenset[str]


_BY_KEY: dict[tuple[type, Label], dict[str, str]] = {}


def _names_by_key(cls: type, style: Label) -> dict[str, str]:
    # Django-style tables take LAGSCOPE = {"UNTRUSTED": ...} and the lower-case names alike.
    found = _BY_KEY.get((cls, style))
    if found is None:
        found = {r.name: r.name for r in rows(cls)}
        if style == "key":
            found.update({r.key: r.name for r in rows(cls)})
        _BY_KEY[(cls, style)] = found
    return found


def build(
    cls: type[T],
    given: Mapping[str, object],
    *,
    host: Host | None = None,
    parse_strings: bool = False,
    style: Label = "flag",
    phase: str = "config",
    what: str = "setting",
    **fixed: object,
) -> tuple[T, Built]:
    """``cls`` with ``given`` over the defaults. ``None`` in ``given`` means "not given";
    names that are not rows are refused; ``fixed`` are the class's other fields."""
    table = rows(cls)
    by_key = _names_by_key(cls, style)
    values: dict[str, Value] = {}
    why: dict[str, str] = {}
    chosen: dict[str, object] = {}
    for key, value in given.items():
        name = by_key.get(key)
        if name is None:
            known = ", ".join(r.key if style == "key" else r.name for r in table)
            raise SettingsError(f"unknown {what} {key!r}; known: {known}", phase)
        if value is not None:
            chosen[name] = value
    for row in table:
        if row.name in chosen:
            raw = chosen[row.name]
            value = row.parse(raw, style, phase) if parse_strings else row.check(raw, style, phase)
            values[row.name], why[row.name] = value, "given"
        elif row.spec.derive is not None:
            host = host or Host.current()
            value, reason = row.spec.derive(Sofar(values), host)
            values[row.name], why[row.name] = row.check(value, style, phase), reason
        else:
            values[row.name], why[row.name] = row.default, row.spec.why
    instance = cls(**values, **fixed)
    return instance, Built(values=values, why=why, given=frozenset(chosen))


def check_values(
    cls: type, given: Mapping[str, object], *, style: Label = "flag", phase: str = "config"
) -> None:
    """Check the given rows of ``cls`` (None = not given) without building it: for values
    a mode of a command ignores (``probe --load``) but that must still make sense."""
    for row in rows(cls):
        value = given.get(row.name)
        if value is not None:
            row.check(value, style, phase)


def click_options(cls: type, *, exclude: Iterable[str] = ()) -> Callable[[F], F]:
    """One click option per row (default ``None``: "not given", so :func:`build` can tell
    a chosen value from a default), in table order in ``--help``."""
    import click

    skip = set(exclude)
    scalar = {"int": click.INT, "float": click.FLOAT, "str": click.STRING}

    def decorate(func: F) -> F:
        for row in reversed(rows(cls)):
            if not row.spec.cli or row.name in skip:
                continue
            bounds = f"; {row.range}" if row.kind in ("int", "float") else ""
            help_text = f"{row.spec.help} [default: {row.shown_default}{bounds}]"
            if row.kind == "bool":
                decl = f"{row.flag}/--no-{row.flag[2:]}"
                func = click.option(decl, row.name, default=None, help=help_text)(func)
                continue
            param_type = click.Choice(row.choices) if row.kind == "choice" else scalar[row.kind]
            names = (row.spec.short, row.flag) if row.spec.short else (row.flag,)
            func = click.option(
                *names,
                row.name,
                type=param_type,
                default=None,
                help=help_text,
                metavar=row.spec.metavar,
            )(func)
        return func

    return decorate


def argparse_options(cls: type, parser: Any) -> None:
    """One argparse option per row on ``parser`` (``manage.py`` commands): the row's flag,
    its default, the row's own parsing and bounds as the option's type, and its help with
    the default and range, as :func:`click_options` gives click."""
    import argparse

    for row in rows(cls):
        if not row.spec.cli:
            continue
        bounds = f"; {row.range}" if row.kind in ("int", "float") else ""
        help_text = f"{row.spec.help} [default: {row.shown_default}{bounds}]"
        if row.kind == "bool":
            parser.add_argument(
                row.flag,
                dest=row.name,
                action=argparse.BooleanOptionalAction,
                default=row.default,
                help=help_text,
            )
            continue

        def parse(text: str, row: Row = row) -> Value:
            try:
                return row.parse(text)
            except SettingsError as exc:
                # argparse names the option itself ("argument --samples: ...").
                raise argparse.ArgumentTypeError(exc.message.removeprefix(f"{row.flag} ")) from None

        parse.__name__ = row.kind  # argparse's "invalid <type> value" names it
        choices = row.choices or None
        parser.add_argument(
            *((row.spec.short, row.flag) if row.spec.short else (row.flag,)),
            dest=row.name,
            type=parse,
            default=row.default,
            choices=choices,
            help=help_text,
            metavar=row.spec.metavar,
        )


Column = Literal[
    "flag", "key", "name", "default", "value", "default_repr", "range", "unit", "help", "why"
]


# The columns of a command's settings table in docs/*.md.
FLAG_COLUMNS: tuple[tuple[str, Column], ...] = (
    ("flag", "flag"),
    ("default", "default"),
    ("range", "range"),
    ("what", "help"),
    ("why", "why"),
)


def markdown(
    *tables: type,
    columns: Sequence[tuple[str, Column | str]] = FLAG_COLUMNS,
    only_cli: bool = False,
) -> str:
    """The rows of ``tables``, in order, as one table as docs/*.md show it: ``columns`` are
    (header, what) pairs, where what is a :data:`Column` or the name of an ``extra`` entry
    of the rows (empty in a row without it)."""

    def cell(row: Row, what: str) -> str:
        spec = row.spec
        if what == "flag":
            return f"`{row.flag}`"
        if what == "key":
            return f"`{row.key}`"
        if what == "name":
            return f"`{row.name}`"
        if what == "default":
            return row.shown_default
        if what == "value":
            value = row.default
            return _number(value) if isinstance(value, (int, float)) else str(value)
        if what == "default_repr":
            return f"`{row.default!r}`"
        if what == "range":
            return row.range
        if what == "unit":
            return spec.unit
        if what == "help":
            return spec.help
        if what == "why":
            return spec.why
        return f"`{spec.extra[what]}`" if what in spec.extra else ""

    lines = [
        "| " + " | ".join(header for header, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for cls in tables:
        for row in rows(cls):
            if only_cli and not row.spec.cli:
                continue
            lines.append("| " + " | ".join(cell(row, what) for _, what in columns) + " |")
    return "\n".join(lines)

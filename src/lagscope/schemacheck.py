"""Checking a parsed JSON document against one of lagscope's published schemas, in one pass.

The saved-file schemas (``lagscope/schemas/*.schema.json``) use a small part of JSON Schema
2020-12: ``type``, ``const``, ``enum``, ``required``, ``properties``,
``additionalProperties``, ``propertyNames``, ``items``, ``minItems`` / ``maxItems``,
``minimum`` / ``maximum``, ``pattern``, ``oneOf`` and local ``$ref`` into ``$defs``.
:func:`compile_schema` turns such a schema into nested plain-Python checks once; running
them over a document visits every value once. A general validator interprets the schema
again at every value, which cost ~0.7 ms per saved request (53 s for 100 000). A keyword
outside that part is refused when the schema is compiled, so a schema can never rely on a
keyword that is silently not checked (tests compare the verdicts with jsonschema's).

One rule holds for every number, wherever it sits, also inside free-form objects
(``options``): it is finite and its magnitude is at most :data:`MAX_NUMBER` (2**53, the
largest range in which a JSON number is an exact integer and any sum of a saved file's
numbers stays finite). Free-form values nest at most :data:`MAX_DEPTH` deep.

A failure raises :class:`SchemaViolation` with the JSON path of the value
(``$.series[0].requests[3].total_ms``) and a message worded as jsonschema words it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from operator import is_not
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER", "SchemaError", "SchemaViolation", "compile_schema"]

MAX_NUMBER = 2**53
MAX_DEPTH = 64

Check = Callable[[Any], None]

# Keywords that only annotate: nothing to check.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})


class SchemaError(ValueError):
    """The schema uses something :func:`compile_schema` does not implement."""


class SchemaViolation(ValueError):
    """A document that does not match; ``path`` is the JSON path of the offending value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self._parts: list[str | int] = []  # innermost first, added while unwinding

    @property
    def path(self) -> str:
        out = "$"
        for part in reversed(self._parts):
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out


def _number_ok(value: float) -> bool:
    return -MAX_NUMBER <= value <= MAX_NUMBER  # False for NaN too


def _bad_number(value: Any) -> SchemaViolation:
    shown = repr(value)
    if len(shown) > 24:  # an integer of 400 digits: say how long, not all of it
        shown = f"{shown[:12]}… ({len(shown.lstrip('-'))} digits)"
    return SchemaViolation(f"{shown} is out of range (finite, magnitude at most 2**53)")


_PY_TYPES: Mapping[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


def _free_form(value: Any) -> None:
    """Any JSON value: numbers in range, nesting bounded (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise SchemaViolation(f"nested deeper than {MAX_DEPTH}")
            children = node.values() if kind is dict else node
            stack.extend((child, depth + 1) for child in children)
        elif (kind is float or kind is int) and not _number_ok(node):
            raise _bad_number(node)


def _scalars_fine(values: list[Any], accepted: frozenset[type], low: float, high: float) -> bool:
    """Whether every value of a list has an accepted type and, if a number, lies in
    [low, high]: passes over the list in C (type, min, max), no Python call per value. False
    only says to look closer: the per-value check then names the first bad one."""
    kinds = set(map(type, values))
    if not kinds <= accepted:
        return False
    if kinds & {int, float}:
        numbers = values if type(None) not in kinds else list(filter(_not_none, values))
        if numbers and not (low <= min(numbers) and max(numbers) <= high):
            return False  # NaN cannot get here: the parser refuses it
    return True


_not_none = partial(is_not, None)


def _join(checks: list[Check]) -> Check:
    if not checks:
        return _free_form
    if len(checks) == 1:
        return checks[0]

    def all_of(value: Any) -> None:
        for check in checks:
            check(value)

    return all_of


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}
        # Checks that only test a scalar type, by id: the accepted Python types. An object's
        # check tests those inline (most values of a saved file), without a call.
        # The check is kept beside its types so that its id cannot be reused.
        self.scalar: dict[int, tuple[Check, frozenset[type]]] = {}

    def ref(self, target: str) -> Check:
        if target not in self.refs:
            if not target.startswith("#/$defs/"):
                raise SchemaError(f"only local $defs references are supported: {target}")
            # Filled in below; a reference to itself (none today) would find this slot.
            slot: list[Check] = []
            self.refs[target] = lambda value: slot[0](value)
            slot.append(self.compile(self.root["$defs"][target[len("#/$defs/") :]]))
            self.refs[target] = slot[0]
        return self.refs[target]

    def compile(self, schema: Mapping[str, Any]) -> Check:
        unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS)
        if unknown:
            raise SchemaError(f"unsupported schema keywords: {sorted(unknown)}")
        if "$ref" in schema:
            if set(schema) - _ANNOTATIONS != {"$ref"}:
                raise SchemaError("$ref beside other keywords is not supported")
            return self.ref(schema["$ref"])
        checks: list[Check] = []
        if "type" in schema:
            checks.append(self.types(schema))
        else:
            checks.append(_free_form)
        for keyword in ("const", "enum", "minimum", "maximum", "pattern", "oneOf"):
            if keyword in schema:
                checks.append(getattr(self, keyword.lower())(schema[keyword]))
        if "minItems" in schema or "maxItems" in schema:
            checks.append(self.length(schema.get("minItems"), schema.get("maxItems")))
        if "items" in schema:
            checks.append(self.items(schema["items"]))
        if any(k in schema for k in ("properties", "required", "additionalProperties")) or (
            "propertyNames" in schema
        ):
            checks.append(self.object(schema))
        return _join(checks)

    # --- keywords ------------------------------------------------------------------------

    def types(self, schema: Mapping[str, Any]) -> Check:
        raw = schema["type"]
        names: tuple[str, ...] = (raw,) if isinstance(raw, str) else tuple(raw)
        unknown = [n for n in names if n not in _PY_TYPES]
        if unknown:
            raise SchemaError(f"unknown type {unknown[0]!r}")
        # Exact Python types (bool is not a number); JSON Schema counts 1.0 as an integer.
        accepted = frozenset(t for n in names for t in _PY_TYPES[n])
        integral_floats = "integer" in names and float not in accepted
        shown = ", ".join(repr(n) for n in names)
        free = ("object" in names and not {"properties", "additionalProperties"} & set(schema)) or (
            "array" in names and "items" not in schema
        )

        def check(value: Any) -> None:
            kind = type(value)
            if (kind is float or kind is int) and not -MAX_NUMBER <= value <= MAX_NUMBER:
                raise _bad_number(value)  # said first: it is what is wrong with it
            if kind not in accepted and not (
                integral_floats and kind is float and value.is_integer()
            ):
                raise SchemaViolation(f"{value!r} is not of type {shown}")
            if free and (kind is dict or kind is list):
                _free_form(value)

        if not accepted & {dict, list} and set(schema) - _ANNOTATIONS == {"type"}:
            self.scalar[id(check)] = (check, accepted)
        return check

    def const(self, expected: Any) -> Check:
        def check(value: Any) -> None:
            if value != expected or type(value) is not type(expected):
                raise SchemaViolation(f"{expected!r} was expected")

        return check

    def enum(self, allowed: list[Any]) -> Check:
        def check(value: Any) -> None:
            if not any(value == a and type(value) is type(a) for a in allowed):
                raise SchemaViolation(f"{value!r} is not one of {allowed!r}")

        return check

    def minimum(self, low: float) -> Check:
        def check(value: Any) -> None:
            if type(value) in (int, float) and value < low:
                raise SchemaViolation(f"{value!r} is less than the minimum of {low!r}")

        return check

    def maximum(self, high: float) -> Check:
        def check(value: Any) -> None:
            if type(value) in (int, float) and value > high:
                raise SchemaViolation(f"{value!r} is greater than the maximum of {high!r}")

        return check

    def pattern(self, regex: str) -> Check:
        compiled = re.compile(regex)

        def check(value: Any) -> None:
            if type(value) is str and compiled.search(value) is None:
                raise SchemaViolation(f"{value!r} does not match {regex!r}")

        return check

    def oneof(self, options: list[Mapping[str, Any]]) -> Check:
        checks = [self.compile(o) for o in options]

        def check(value: Any) -> None:
            passed = 0
            for c in checks:
                try:
                    c(value)
                except SchemaViolation:
                    continue
                passed += 1
            if passed == 0:
                raise SchemaViolation(f"{value!r} is not valid under any of the given schemas")
            if passed > 1:
                raise SchemaViolation(f"{value!r} is valid under each of several schemas")

        return check

    def length(self, low: int | None, high: int | None) -> Check:
        def check(value: Any) -> None:
            if type(value) is list:
                if low is not None and len(value) < low:
                    raise SchemaViolation(f"{value!r} is too short")
                if high is not None and len(value) > high:
                    raise SchemaViolation(f"{value!r} is too long")

        return check

    def _scalar_bounds(
        self, schema: Mapping[str, Any]
    ) -> tuple[frozenset[type], float, float] | None:
        """For an item schema that only says a scalar type and a range (through a ``$ref``
        too): the accepted Python types and the bounds; None for anything else."""
        while set(schema) - _ANNOTATIONS == {"$ref"}:
            target = schema["$ref"]
            if not target.startswith("#/$defs/"):
                return None
            schema = self.root["$defs"][target[len("#/$defs/") :]]
        if "type" not in schema or set(schema) - _ANNOTATIONS - {"type", "minimum", "maximum"}:
            return None
        raw = schema["type"]
        names = (raw,) if isinstance(raw, str) else tuple(raw)
        if not set(names) <= _PY_TYPES.keys() or {"object", "array"} & set(names):
            return None
        accepted = frozenset(t for n in names for t in _PY_TYPES[n])
        low = max(float(schema.get("minimum", -MAX_NUMBER)), -MAX_NUMBER)
        high = min(float(schema.get("maximum", MAX_NUMBER)), MAX_NUMBER)
        return accepted, low, high

    def items(self, schema: Mapping[str, Any]) -> Check:
        item = self.compile(schema)
        bounds = self._scalar_bounds(schema)

        def check(value: Any) -> None:
            if type(value) is not list:
                return
            if bounds is not None and _scalars_fine(value, *bounds):
                return  # the common case: a column of a saved file, checked at C speed
            i = 0
            try:
                for i, element in enumerate(value):  # noqa: B007 (i is read on failure)
                    item(element)
            except SchemaViolation as exc:
                exc._parts.append(i)
                raise

        return check

    def object(self, schema: Mapping[str, Any]) -> Check:
        props = {k: self.compile(v) for k, v in schema.get("properties", {}).items()}
        required = tuple(schema.get("required", ()))
        extra_schema = schema.get("additionalProperties", True)
        forbid_extra = extra_schema is False
        extra = None if isinstance(extra_schema, bool) else self.compile(extra_schema)
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None
        known = frozenset(props)
        scalar = {k: self.scalar[id(c)][1] for k, c in props.items() if id(c) in self.scalar}

        def check(value: Any) -> None:
            if type(value) is not dict:
                return
            for name in required:
                if name not in value:
                    raise SchemaViolation(f"{name!r} is a required property")
            if forbid_extra and not known.issuperset(value):
                unexpected = ", ".join(repr(k) for k in value if k not in known)
                raise SchemaViolation(
                    f"Additional properties are not allowed ({unexpected} was unexpected)"
                )
            key = ""
            try:
                for key, child in value.items():
                    if names is not None:
                        names(key)
                    accepted = scalar.get(key)
                    if accepted is not None:
                        kind = type(child)
                        if kind in accepted:
                            if kind is not float and kind is not int:
                                continue
                            if -MAX_NUMBER <= child <= MAX_NUMBER:
                                continue
                        # Anything else: the full check says what is wrong.
                    sub = props.get(key)
                    if sub is not None:
                        sub(child)
                    elif extra is not None:
                        extra(child)
                    elif type(child) is dict or type(child) is list:
                        _free_form(child)
                    elif (type(child) is float or type(child) is int) and not _number_ok(child):
                        raise _bad_number(child)
            except SchemaViolation as exc:
                exc._parts.append(key)
                raise

        return check


_KEYWORDS = (
    "$ref",
    "type",
    "const",
    "enum",
    "minimum",
    "maximum",
    "pattern",
    "oneOf",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
)


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """The one-pass check for ``schema`` (raises :class:`SchemaError` for what it lacks).

    The check returns None for a matching document and raises :class:`SchemaViolation`
    naming the first value that does not match.
    """
    return _Compiler(schema).compile(schema)

"""Statement shapes: which SQL statements of a request are "the same query". Pure.

A shape is the statement with everything that varies between executions of the same ORM
query taken out: literals (strings, numbers), placeholders of every paramstyle, the length
of ``IN (...)`` lists and of multi-row ``VALUES``, comments (sqlcommenter puts a trace id
in each) and whitespace. Only a hash of the shape is kept, per process; the SQL text never
leaves this module. The per-request counts feed the ``dbshapes`` metric: many executions
of one shape is the N+1 signature.
"""

from __future__ import annotations

import functools
import re

__all__ = ["normalize", "statement_shape"]

_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
# 'it''s' and E'\n' strings; numbers not glued to an identifier (t1, col_2 stay).
_LITERALS = re.compile(
    r"""[Ee]?'(?:[^'\\]|''|\\.)*'"""
    r"|(?<![\w$.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])"
)
_PLACEHOLDERS = re.compile(r"%\([^)]*\)s|%s|\$\d+|\?|(?<![\w:]):[A-Za-z_]\w*")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_ROWS = re.compile(r"\(\?\+\)(?:\s*,\s*\(\?\+\))+")
_SPACE = re.compile(r"\s+")


def normalize(sql: str) -> str:
    """The shape of ``sql`` as text (for tests and docs; the middleware keeps only a hash)."""
    text = _COMMENTS.sub(" ", sql)
    text = _LITERALS.sub("?", text)
    text = _PLACEHOLDERS.sub("?", text)
    text = _LIST.sub("(?+)", text)
    text = _ROWS.sub("(?+)", text)
    return _SPACE.sub(" ", text).strip()


@functools.lru_cache(maxsize=2048)
def statement_shape(sql: str) -> int:
    """A per-process hash of the shape of ``sql``.

    Cached by the exact text: an ORM query repeats its SQL string verbatim (values travel
    as parameters), so after the first execution this is one dictionary lookup.
    """
    return hash(normalize(sql))

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

__all__ = ["MAX_SHAPE_CHARS", "normalize", "statement_shape"]

# Only this much of a statement decides its shape: it bounds the normalizing work (about
# 0.3 ms at this length on the project VM) and what the cache holds (2048 entries of at most
# this many characters), and a bulk INSERT of a million rows is the same statement as one
# of a thousand anyway.
MAX_SHAPE_CHARS = 2048

# An unterminated /* runs to the end (as in SQL): one match, never a rescan per "/*".
_COMMENTS = re.compile(r"/\*.*?(?:\*/|\Z)|--[^\n]*", re.DOTALL)
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


def statement_shape(sql: str) -> int:
    """A per-process hash of the shape of ``sql`` (its first :data:`MAX_SHAPE_CHARS`).

    Cached by the text: an ORM query repeats its SQL string verbatim (values travel as
    parameters), so after the first execution this is one dictionary lookup.
    """
    return _shape(sql if len(sql) <= MAX_SHAPE_CHARS else sql[:MAX_SHAPE_CHARS])


@functools.lru_cache(maxsize=2048)
def _shape(text: str) -> int:
    return hash(normalize(text))

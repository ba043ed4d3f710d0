"""psycopg SQL with named placeholders (``%(name)s``) rewritten for PGlite's ``$n`` text params.

PGlite takes each parameter as PostgreSQL's text form, so values are rendered the way the
server would read them: integers in decimal, lists as array literals (``{1,2,NULL}``), aware
datetimes in ISO 8601. Types this module cannot render faithfully are refused, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s|%")


def to_dollar_params(sql: str, params: Mapping[str, object]) -> tuple[str, list[str | None]]:
    """``sql`` with ``%(name)s`` as ``$n`` (one number per distinct name, ``%%`` as ``%``) and
    the values in ``$n`` order as text."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            raise ValueError(f"unsupported placeholder at offset {match.start()}: {sql[:80]!r}")
        if name not in params:
            raise KeyError(f"no value for parameter {name!r}")
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    text = _PLACEHOLDER.sub(replace, sql)
    return text, [as_text(params[name]) for name in numbers]


def as_text(value: object) -> str | None:
    """PostgreSQL's text input form of ``value`` (None stays SQL NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous for timestamptz")
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(v) for v in value) + "}"
    raise TypeError(f"no faithful text form for {type(value).__name__}")


def _array_element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"array elements must be int or None, got {type(value).__name__}")

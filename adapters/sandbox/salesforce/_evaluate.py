"""How a parsed SOQL WHERE and ORDER BY treat values, as Salesforce does.

Text compares without case; IDs compare in their 18-character form; null is a
value for ``=`` and ``!=`` but never ordered; ``LIKE`` has ``%`` and ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ._errors import SalesforceError
from ._schema import (
    BOOLEAN,
    DATE,
    DATETIME,
    ID,
    NUMERIC,
    REFERENCE,
    TEXTUAL,
    FieldSpec,
    id18,
    is_salesforce_id,
)
from ._soql import OrderBy

__all__ = ["check_literal", "comparable", "comparator", "like_matcher", "sort_rows"]

Record = dict[str, Any]


def check_literal(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    ok = {
        **dict.fromkeys(TEXTUAL, str),
        **dict.fromkeys(NUMERIC, Decimal),
        BOOLEAN: bool,
        DATETIME: datetime,
        DATE: date,
    }[spec.type]
    # datetime is a subclass of date: a date field must not take a datetime literal
    if not isinstance(value, ok) or (spec.type == DATE and isinstance(value, datetime)):
        quoted = "should be enclosed in quotes" if ok is str else "should not be enclosed in quotes"
        raise SalesforceError(
            400,
            "INVALID_FIELD",
            f"value of filter criterion for field '{spec.name}' must be of type {spec.type} "
            f"and {quoted}",
        )
    return value


def comparable(spec: FieldSpec, value: Any) -> Any:
    """The comparable form: IDs as 18-character IDs, text case-insensitively."""
    if value is None:
        return None
    if spec.type in (ID, REFERENCE):
        return id18(value) if is_salesforce_id(value) else value
    if isinstance(value, str):
        return value.casefold()
    return value


def comparator(op: str, value: Any, get: Callable[[Record], Any]) -> Callable[[Record], bool]:
    if op == "=":
        return lambda r: get(r) == value
    if op == "!=":
        return lambda r: get(r) != value
    if value is None:
        return lambda r: False

    def ordered(r: Record) -> bool:
        v = get(r)
        if v is None:
            return False
        if op == "<":
            return bool(v < value)
        if op == "<=":
            return bool(v <= value)
        if op == ">":
            return bool(v > value)
        return bool(v >= value)

    return ordered


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """SOQL LIKE: ``%`` any run, ``_`` one character, ``\\%``/``\\_`` literal, no case."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    regex = re.compile("".join(out), re.IGNORECASE | re.DOTALL)
    return lambda text: regex.fullmatch(text) is not None


def sort_rows(
    rows: list[Record], order: list[tuple[Callable[[Record], Any], OrderBy]]
) -> list[Record]:
    # Stable passes from the last key to the first give a multi-key sort with
    # per-key direction and null placement.
    for get, spec in reversed(order):
        nulls = [r for r in rows if get(r) is None]
        values = [r for r in rows if get(r) is not None]

        def key(r: Record, get: Callable[[Record], Any] = get) -> Any:
            v = get(r)
            return v.casefold() if isinstance(v, str) else v

        values.sort(key=key, reverse=spec.descending)
        rows = values + nulls if spec.nulls_last else nulls + values
    return rows

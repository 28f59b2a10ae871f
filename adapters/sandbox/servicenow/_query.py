"""ServiceNow's encoded queries (``sysparm_query``), parsed and evaluated.

An encoded query is conditions joined by ``^`` (AND), ``^OR`` (OR with the
condition before it) and ``^NQ`` (a new query, OR'ed with the ones before),
plus ``ORDERBYfield`` / ``ORDERBYDESCfield`` terms anywhere in it. A condition
is ``field`` ``operator`` ``value``: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
``LIKE``, ``NOTLIKE``, ``STARTSWITH``, ``ENDSWITH``, ``IN``, ``NOT IN``,
``ISEMPTY``, ``ISNOTEMPTY``, ``ANYTHING``. ``^^`` is a literal ``^``.

A condition on a field the table does not have matches no record, as on an
instance with ``glide.invalid_query.returns_no_rows`` set (the safe setting).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Condition", "EncodedQuery", "QueryError", "parse_query"]

_CONDITION = re.compile(
    r"^([a-z][a-z0-9_.]*?)"
    r"(ISNOTEMPTY|ISEMPTY|ANYTHING|NOTLIKE|NOT IN|STARTSWITH|ENDSWITH|LIKE|IN|!=|>=|<=|=|>|<)"
    r"(.*)$",
    re.DOTALL,
)
_UNARY = frozenset({"ISEMPTY", "ISNOTEMPTY", "ANYTHING"})
_PLACEHOLDER = "\x00"


class QueryError(ValueError):
    """An encoded query the sandbox cannot read (answered 400)."""


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str

    def matches(self, record: Mapping[str, str]) -> bool:
        if self.field not in record:
            return False  # glide.invalid_query.returns_no_rows
        have = record[self.field]
        op, want = self.operator, self.value
        if op == "ANYTHING":
            return True
        if op == "ISEMPTY":
            return have == ""
        if op == "ISNOTEMPTY":
            return have != ""
        if op == "=":
            return have == want
        if op == "!=":
            return have != want
        if op == "LIKE":
            return want.lower() in have.lower()
        if op == "NOTLIKE":
            return want.lower() not in have.lower()
        if op == "STARTSWITH":
            return have.lower().startswith(want.lower())
        if op == "ENDSWITH":
            return have.lower().endswith(want.lower())
        if op in ("IN", "NOT IN"):
            inside = have in want.split(",")
            return inside if op == "IN" else not inside
        return _compare(have, want, op)


def _compare(have: str, want: str, op: str) -> bool:
    """Numbers compare as numbers, anything else as text (dates sort as text)."""
    a, b = _sort_key(have), _sort_key(want)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


@dataclass(frozen=True)
class EncodedQuery:
    """Queries OR'ed together (``^NQ``), each an AND of OR-groups, and the order."""

    queries: tuple[tuple[tuple[Condition, ...], ...], ...] = ()
    order: tuple[tuple[str, bool], ...] = field(default=())  # (field, descending)

    def matches(self, record: Mapping[str, str]) -> bool:
        if not self.queries:
            return True
        return any(
            all(any(c.matches(record) for c in group) for group in query) for query in self.queries
        )

    def sort(self, rows: list[dict[str, str]], key: Callable[[dict[str, str], str], str]) -> None:
        """Sort ``rows`` in place by the ORDERBY terms (last term applied first)."""
        for name, descending in reversed(self.order):
            rows.sort(key=lambda r: _sort_key(key(r, name)), reverse=descending)


def _sort_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value.lower())


def parse_query(text: str | None) -> EncodedQuery:
    """Parse ``sysparm_query``; raises :class:`QueryError` on a term it cannot read."""
    if not text:
        return EncodedQuery()
    text = text.replace("^^", _PLACEHOLDER)
    queries: list[tuple[tuple[Condition, ...], ...]] = []
    order: list[tuple[str, bool]] = []
    for part in text.split("^NQ"):
        groups: list[list[Condition]] = []
        for term in part.split("^"):
            term = term.replace(_PLACEHOLDER, "^")
            if not term or term == "EQ":
                continue
            if term.startswith("ORDERBYDESC"):
                order.append((term[len("ORDERBYDESC") :], True))
                continue
            if term.startswith("ORDERBY"):
                order.append((term[len("ORDERBY") :], False))
                continue
            is_or = term.startswith("OR") and not term.startswith("ORDERBY")
            condition = _condition(term[2:] if is_or else term)
            if is_or and groups:
                groups[-1].append(condition)
            else:
                groups.append([condition])
        if groups:
            queries.append(tuple(tuple(g) for g in groups))
    return EncodedQuery(tuple(queries), tuple(order))


def _condition(term: str) -> Condition:
    found = _CONDITION.match(term)
    if found is None:
        raise QueryError(f"cannot read the query term {term!r}")
    name, op, value = found.groups()
    if op in _UNARY and value:
        raise QueryError(f"{op} takes no value in {term!r}")
    return Condition(name, op, value)

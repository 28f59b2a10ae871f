"""A small SOQL parser: the subset the sandbox answers.

Grammar (keywords case-insensitive, as in Salesforce)::

    query   := SELECT field ("," field)* FROM name [WHERE expr]
               [ORDER BY order ("," order)*] [LIMIT int] [OFFSET int]
    order   := field [ASC | DESC] [NULLS (FIRST | LAST)]
    expr    := term (OR term)*
    term    := factor (AND factor)*
    factor  := NOT factor | "(" expr ")" | field op literal
               | field [NOT] IN "(" literal ("," literal)* ")" | field LIKE string
    op      := = | != | <> | < | <= | > | >=
    literal := 'string' | number | TRUE | FALSE | NULL | date | datetime

Child subqueries, aggregates and date functions are not supported; they answer
``MALFORMED_QUERY`` like any other syntax the parser does not know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeAlias

__all__ = [
    "And",
    "Compare",
    "Expr",
    "InList",
    "Like",
    "Literal",
    "Not",
    "Or",
    "OrderBy",
    "Query",
    "SoqlError",
    "parse",
]

Literal: TypeAlias = str | Decimal | bool | date | datetime | None


class SoqlError(Exception):
    """The query cannot be parsed; ``code`` is the Salesforce error code."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Compare:
    field: str
    op: str  # one of = != < <= > >=
    value: Literal


@dataclass(frozen=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    field: str
    pattern: str


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


Expr: TypeAlias = Compare | InList | Like | And | Or | Not


@dataclass(frozen=True)
class OrderBy:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class Query:
    fields: tuple[str, ...]
    sobject: str
    where: Expr | None = None
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int = 0


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)

_KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "NULL",
    "TRUE",
    "FALSE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
}

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class _Token:
    kind: str  # datetime date number string name keyword op punct end
    text: str
    value: Literal
    pos: int


def _unquote(raw: str, pos: int) -> str:
    out: list[str] = []
    i = 1
    while i < len(raw) - 1:
        ch = raw[i]
        if ch == "\\":
            nxt = raw[i + 1]
            # LIKE keeps \% and \_ escaped for the pattern matcher
            if nxt in "%_":
                out.append("\\" + nxt)
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                raise SoqlError(f"Invalid string literal escape at {pos + i}")
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _parse_datetime(text: str) -> datetime:
    normal = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normal):
        normal = normal[:-2] + ":" + normal[-2:]
    try:
        return datetime.fromisoformat(normal).astimezone(UTC)
    except ValueError as exc:
        raise SoqlError(f"invalid date/time literal: {text}") from exc


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        raw = match.group()
        start, pos = pos, match.end()
        if kind == "ws":
            continue
        value: Literal = raw
        if kind == "datetime":
            value = _parse_datetime(raw)
        elif kind == "date":
            try:
                value = date.fromisoformat(raw)
            except ValueError as exc:
                raise SoqlError(f"invalid date literal: {raw}") from exc
        elif kind == "number":
            value = Decimal(raw)
        elif kind == "string":
            value = _unquote(raw, start)
        elif kind == "name" and raw.upper() in _KEYWORDS:
            kind, value = "keyword", raw.upper()
        elif kind == "op" and raw == "<>":
            value = "!="
        tokens.append(_Token(kind, raw, value, start))
    tokens.append(_Token("end", "", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _fail(self, expected: str) -> SoqlError:
        tok = self.tok
        found = tok.text or "end of query"
        return SoqlError(f"unexpected token: '{found}' at position {tok.pos}, expected {expected}")

    def _keyword(self, *words: str) -> str | None:
        if self.tok.kind == "keyword" and self.tok.value in words:
            word = str(self.tok.value)
            self.i += 1
            return word
        return None

    def _expect_keyword(self, word: str) -> None:
        if self._keyword(word) is None:
            raise self._fail(word)

    def _punct(self, ch: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == ch:
            self.i += 1
            return True
        return False

    def _name(self) -> str:
        if self.tok.kind != "name":
            raise self._fail("a field name")
        name = self.tok.text
        self.i += 1
        return name

    def query(self) -> Query:
        self._expect_keyword("SELECT")
        fields = [self._name()]
        while self._punct(","):
            fields.append(self._name())
        self._expect_keyword("FROM")
        sobject = self._name()
        where = None
        if self._keyword("WHERE"):
            where = self._or()
        order: list[OrderBy] = []
        if self._keyword("ORDER"):
            self._expect_keyword("BY")
            order.append(self._order())
            while self._punct(","):
                order.append(self._order())
        limit = None
        if self._keyword("LIMIT"):
            limit = self._int()
        offset = 0
        if self._keyword("OFFSET"):
            offset = self._int()
        if self.tok.kind != "end":
            raise self._fail("end of query")
        return Query(tuple(fields), sobject, where, tuple(order), limit, offset)

    def _int(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit():
            raise self._fail("a non-negative integer")
        self.i += 1
        return int(tok.text)

    def _order(self) -> OrderBy:
        name = self._name()
        descending = self._keyword("ASC", "DESC") == "DESC"
        # Salesforce's default: nulls first ascending, nulls last descending
        nulls_last = descending
        if self._keyword("NULLS"):
            which = self._keyword("FIRST", "LAST")
            if which is None:
                raise self._fail("FIRST or LAST")
            nulls_last = which == "LAST"
        return OrderBy(name, descending, nulls_last)

    def _or(self) -> Expr:
        items = [self._and()]
        while self._keyword("OR"):
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Expr:
        items = [self._factor()]
        while self._keyword("AND"):
            items.append(self._factor())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _factor(self) -> Expr:
        if self._keyword("NOT"):
            return Not(self._factor())
        if self._punct("("):
            inner = self._or()
            if not self._punct(")"):
                raise self._fail("')'")
            return inner
        field = self._name()
        if self.tok.kind == "op":
            op = str(self.tok.value)
            self.i += 1
            return Compare(field, op, self._literal())
        if self._keyword("LIKE"):
            value = self._literal()
            if not isinstance(value, str):
                raise SoqlError("LIKE needs a string literal")
            return Like(field, value)
        negated = self._keyword("NOT") is not None
        if self._keyword("IN"):
            if not self._punct("("):
                raise self._fail("'('")
            values = [self._literal()]
            while self._punct(","):
                values.append(self._literal())
            if not self._punct(")"):
                raise self._fail("')'")
            return InList(field, tuple(values), negated)
        raise self._fail("an operator")

    def _literal(self) -> Literal:
        tok = self.tok
        if tok.kind in ("string", "number", "date", "datetime"):
            self.i += 1
            return tok.value
        if tok.kind == "keyword" and tok.value in ("TRUE", "FALSE", "NULL"):
            self.i += 1
            return None if tok.value == "NULL" else tok.value == "TRUE"
        raise self._fail("a literal value")


def parse(text: str) -> Query:
    """Parse one SOQL query; raises :class:`SoqlError` (``MALFORMED_QUERY``)."""
    return _Parser(text).query()

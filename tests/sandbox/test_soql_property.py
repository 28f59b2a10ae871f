"""Property: a generated WHERE over generated records selects what a Python filter selects.

The reference evaluator below is written from SOQL's documented semantics, on
its own: text compares without case, null is a value for = and != but never
ordered, LIKE's % and _ are wildcards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sandbox.salesforce import Store

V = "v60.0"
STAGES = ["Prospecting", "Closed Won", "Closed Lost", "Negotiation/Review"]
INTERVALS = [None, "Monthly", "Annual"]
TEXT = st.text(alphabet="abAB %_'\\", max_size=4)
AMOUNTS = st.one_of(st.none(), st.sampled_from([Decimal(v) for v in ("0", "9.5", "10", "250")]))
DATES = st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 1, 5))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "Name": draw(st.text(alphabet="abAB %_'\\", min_size=1, max_size=4)),
        "Amount": draw(AMOUNTS),
        "StageName": draw(st.sampled_from(STAGES)),
        "CloseDate": draw(DATES),
        "Billing_Interval__c": draw(st.sampled_from(INTERVALS)),
    }


# -- the expression model, its SOQL rendering, and its reference meaning --------------


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str  # = != < <= > >= IN NOTIN LIKE
    value: Any


@dataclass(frozen=True)
class Node:
    op: str  # AND OR NOT
    items: tuple[Any, ...]


FIELD_VALUES = {
    "Name": TEXT,
    "Amount": AMOUNTS,
    "StageName": st.sampled_from(STAGES),
    "CloseDate": DATES,
    "Billing_Interval__c": st.sampled_from(INTERVALS),
    "IsWon": st.booleans(),
}


@st.composite
def leaves(draw: st.DrawFn) -> Leaf:
    field = draw(st.sampled_from(sorted(FIELD_VALUES)))
    values = FIELD_VALUES[field]
    if field == "IsWon":
        return Leaf(field, draw(st.sampled_from(["=", "!="])), draw(values))
    ops = ["=", "!=", "<", "<=", ">", ">=", "IN", "NOTIN"]
    if field in ("Name", "StageName", "Billing_Interval__c"):
        ops.append("LIKE")
    op = draw(st.sampled_from(ops))
    if op in ("IN", "NOTIN"):
        return Leaf(field, op, tuple(draw(st.lists(values, min_size=1, max_size=3))))
    if op == "LIKE":
        return Leaf(field, op, draw(TEXT))
    value = draw(values)
    if value is None and op not in ("=", "!="):
        value = draw(values.filter(lambda v: v is not None))
    return Leaf(field, op, value)


expressions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda xs: Node("AND", tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda xs: Node("OR", tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda x: Node("NOT", (x,)), inner),
    ),
    max_leaves=8,
)


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)  # Decimal, date


def render(expr: Any) -> str:
    if isinstance(expr, Node):
        if expr.op == "NOT":
            return f"(NOT {render(expr.items[0])})"
        return "(" + f" {expr.op} ".join(render(i) for i in expr.items) + ")"
    if expr.op in ("IN", "NOTIN"):
        keyword = "IN" if expr.op == "IN" else "NOT IN"
        return f"{expr.field} {keyword} ({', '.join(literal(v) for v in expr.value)})"
    if expr.op == "LIKE":
        # a backslash before anything but % or _ is not a valid LIKE escape: double it
        return f"{expr.field} LIKE {literal(expr.value)}"
    return f"{expr.field} {expr.op} {literal(expr.value)}"


def norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def like(text: str, pattern: str) -> bool:
    """Reference LIKE by recursion over the pattern (independent of the regex one)."""
    if not pattern:
        return not text
    head = pattern[0]
    if head == "\\" and len(pattern) > 1 and pattern[1] in "%_":
        return bool(text) and text[0] == pattern[1] and like(text[1:], pattern[2:])
    if head == "%":
        return any(like(text[i:], pattern[1:]) for i in range(len(text) + 1))
    if head == "_":
        return bool(text) and like(text[1:], pattern[1:])
    return bool(text) and text[0].casefold() == head.casefold() and like(text[1:], pattern[1:])


def holds(expr: Any, record: dict[str, Any]) -> bool:
    if isinstance(expr, Node):
        if expr.op == "AND":
            return all(holds(i, record) for i in expr.items)
        if expr.op == "OR":
            return any(holds(i, record) for i in expr.items)
        return not holds(expr.items[0], record)
    actual = norm(record[expr.field])
    if expr.op == "IN":
        return actual in {norm(v) for v in expr.value}
    if expr.op == "NOTIN":
        return actual not in {norm(v) for v in expr.value}
    if expr.op == "LIKE":
        return actual is not None and like(record[expr.field], expr.value)
    wanted = norm(expr.value)
    if expr.op == "=":
        return bool(actual == wanted)
    if expr.op == "!=":
        return bool(actual != wanted)
    if actual is None:
        return False
    return bool(
        {
            "<": actual < wanted,
            "<=": actual <= wanted,
            ">": actual > wanted,
            ">=": actual >= wanted,
        }[expr.op]
    )


def load(rows: list[dict[str, Any]]) -> tuple[Store, list[dict[str, Any]]]:
    store = Store()
    typed = []
    for row in rows:
        body = {
            **row,
            "Amount": None if row["Amount"] is None else str(row["Amount"]),
            "CloseDate": row["CloseDate"].isoformat(),
        }
        record_id = store.create("Opportunity", body)
        typed.append({**row, "Id": record_id, "IsWon": row["StageName"] == "Closed Won"})
    return store, typed


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(records(), max_size=12), expr=expressions)
def test_where_matches_python_filter(rows: list[dict[str, Any]], expr: Any) -> None:
    store, typed = load(rows)
    page = store.query(f"SELECT Id FROM Opportunity WHERE {render(expr)}", version=V)
    assert {r["Id"] for r in page["records"]} == {r["Id"] for r in typed if holds(expr, r)}


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(records(), max_size=12),
    field=st.sampled_from(["Name", "Amount", "CloseDate"]),
    descending=st.booleans(),
    limit=st.integers(min_value=0, max_value=15),
)
def test_order_by_and_limit_match_python_sort(
    rows: list[dict[str, Any]], field: str, descending: bool, limit: int
) -> None:
    store, typed = load(rows)
    direction = "DESC" if descending else "ASC"
    page = store.query(
        f"SELECT Id, {field} FROM Opportunity ORDER BY {field} {direction} LIMIT {limit}",
        version=V,
    )
    present = [norm(r[field]) for r in typed if r[field] is not None]
    nulls = [None] * (len(typed) - len(present))
    ordered = sorted(present, reverse=descending)
    expected = (ordered + nulls if descending else nulls + ordered)[:limit]
    got = [r[field] for r in page["records"]]
    if field == "Amount":
        got = [None if v is None else Decimal(str(v)) for v in got]
    elif field == "CloseDate":
        got = [None if v is None else date.fromisoformat(v) for v in got]
    assert [norm(v) for v in got] == expected

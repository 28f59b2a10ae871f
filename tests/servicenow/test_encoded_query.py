"""The sandbox's reading of ServiceNow encoded queries (``sysparm_query``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.sandbox.servicenow import QueryError, parse_query

ROWS = [
    {"sys_id": "a", "name": "Acme GmbH", "priority": "1", "state": "1", "notes": ""},
    {"sys_id": "b", "name": "Beta AG", "priority": "3", "state": "10", "notes": "x^y"},
    {"sys_id": "c", "name": "acme inc", "priority": "10", "state": "3", "notes": "vip"},
]


def _ids(query: str) -> list[str]:
    q = parse_query(query)
    rows = [r for r in ROWS if q.matches(r)]
    q.sort(rows, lambda r, name: r.get(name, ""))
    return [r["sys_id"] for r in rows]


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["a", "b", "c"]),
        ("priority=1", ["a"]),
        ("priority!=1", ["b", "c"]),
        ("nameLIKEacme", ["a", "c"]),  # LIKE ignores case
        ("nameLIKEacme^state=1", ["a"]),
        ("state=1^ORstate=3", ["a", "c"]),
        ("state=1^NQpriority=3", ["a", "b"]),
        ("stateIN10,3^ORDERBYname", ["c", "b"]),
        ("stateNOT IN10,3", ["a"]),
        ("notesISEMPTY", ["a"]),
        ("notesISNOTEMPTY^ORDERBYDESCname", ["b", "c"]),  # text sorts ignoring case
        ("priority>2^ORDERBYpriority", ["b", "c"]),  # numbers compare as numbers
        ("nameSTARTSWITHbeta", ["b"]),
        ("nameENDSWITHgmbh", ["a"]),
        ("notes=x^^y", ["b"]),  # ^^ is a literal ^
        ("no_such_field=1", []),  # glide.invalid_query.returns_no_rows
        ("ORDERBYDESCpriority", ["c", "b", "a"]),
    ],
)
def test_encoded_queries(query: str, ids: list[str]) -> None:
    assert _ids(query) == ids


@pytest.mark.parametrize("query", ["Priority=1", "=1", "nameISEMPTYx"])
def test_unreadable_terms_are_refused(query: str) -> None:
    with pytest.raises(QueryError):
        parse_query(query)


@given(st.text(alphabet="abcxyz ,.-:", max_size=20))
def test_a_value_round_trips_through_equals(value: str) -> None:
    row = {"notes": value}
    assert parse_query(f"notes={value}").matches(row)
    assert not parse_query(f"notes!={value}").matches(row)

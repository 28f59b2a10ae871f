"""The SOQL parser and the sandbox store's evaluation of it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from adapters.sandbox.salesforce import SalesforceError, SoqlError, Store, parse
from adapters.sandbox.salesforce._schema import id18
from adapters.sandbox.salesforce._soql import And, Compare, InList, Like, Not, Or, OrderBy

V = "v60.0"


def test_select_list_with_parent_fields_order_limit_offset() -> None:
    q = parse(
        "select Id, Account.Name, Amount from Opportunity "
        "order by Amount desc nulls last, Name limit 10 offset 5"
    )
    assert q.fields == ("Id", "Account.Name", "Amount")
    assert q.sobject == "Opportunity"
    assert q.order_by == (OrderBy("Amount", True, True), OrderBy("Name", False, False))
    assert (q.limit, q.offset) == (10, 5)


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = Compare("A", "=", "1"), Compare("B", "=", "2"), Compare("C", "=", "3")
    assert parse("SELECT Id FROM X WHERE A = '1' OR B = '2' AND C = '3'").where == Or(
        (a, And((b, c)))
    )
    assert parse("SELECT Id FROM X WHERE (A = '1' OR B = '2') AND C = '3'").where == And(
        (Or((a, b)), c)
    )


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Amount >= 10.5", Compare("Amount", ">=", Decimal("10.5"))),
        ("Amount <> null", Compare("Amount", "!=", None)),
        ("IsWon = TRUE", Compare("IsWon", "=", True)),
        ("CloseDate < 2026-12-31", Compare("CloseDate", "<", date(2026, 12, 31))),
        (
            "SystemModstamp > 2026-11-26T10:00:00Z",
            Compare("SystemModstamp", ">", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ),
        (
            "SystemModstamp > 2026-11-26T12:00:00.250+0200",
            Compare("SystemModstamp", ">", datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=UTC)),
        ),
        ("StageName IN ('A', 'B')", InList("StageName", ("A", "B"))),
        ("StageName NOT IN ('A')", InList("StageName", ("A",), negated=True)),
        ("Name LIKE 'Ac%'", Like("Name", "Ac%")),
        ("NOT Name = 'x'", Not(Compare("Name", "=", "x"))),
        (r"Name = 'O\'Brien \\ Co'", Compare("Name", "=", "O'Brien \\ Co")),
    ],
)
def test_where_literals_and_operators(where: str, expected: object) -> None:
    assert parse(f"SELECT Id FROM Opportunity WHERE {where}").where == expected


@pytest.mark.parametrize(
    "soql",
    [
        "",
        "SELECT FROM Account",
        "SELECT Id Account",
        "SELECT Id FROM Account WHERE",
        "SELECT Id FROM Account WHERE Name = 'open",
        "SELECT Id FROM Account WHERE (Name = 'a'",
        "SELECT Id FROM Account WHERE Name ~ 'a'",
        "SELECT Id FROM Account LIMIT -1",
        "SELECT Id FROM Account WHERE Name LIKE 5",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
    ],
)
def test_malformed_queries_raise(soql: str) -> None:
    with pytest.raises(SoqlError) as info:
        parse(soql)
    assert info.value.code == "MALFORMED_QUERY"


@pytest.fixture
def store() -> Store:
    s = Store()
    acme = s.create("Account", {"Name": "Acme GmbH", "BillingCountry": "DE"})
    s.create("Account", {"Name": "Zeta", "ParentId": acme})
    s.create("Opportunity", _opp("Big", acme, 500, "Closed Won"))
    s.create("Opportunity", _opp("small", acme, 20, "Prospecting"))
    s.create("Opportunity", _opp("Nothing", None, None, "Closed Lost"))
    return s


def _opp(name: str, account: str | None, amount: float | None, stage: str) -> dict[str, object]:
    return {
        "Name": name,
        "AccountId": account,
        "Amount": amount,
        "StageName": stage,
        "CloseDate": "2026-12-01",
        "CurrencyIsoCode": "EUR",
    }


def _names(store: Store, where: str, order: str = "") -> list[str]:
    page = store.query(f"SELECT Name FROM Opportunity WHERE {where} {order}", version=V)
    return [r["Name"] for r in page["records"]]


def test_string_comparison_ignores_case_and_like_wildcards(store: Store) -> None:
    assert _names(store, "Name = 'BIG'") == ["Big"]
    assert sorted(_names(store, "Name LIKE '%i%'")) == ["Big", "Nothing"]
    assert _names(store, "Name LIKE 's_all'") == ["small"]


def test_null_semantics(store: Store) -> None:
    assert _names(store, "Amount = null") == ["Nothing"]
    assert sorted(_names(store, "Amount != 20")) == ["Big", "Nothing"]  # null is a value
    assert _names(store, "Amount < 100") == ["small"]  # null is not less than anything
    assert _names(store, "AccountId NOT IN (null)", "ORDER BY Name") == ["Big", "small"]


def test_derived_flags_and_ordering(store: Store) -> None:
    assert _names(store, "IsWon = true") == ["Big"]
    assert _names(store, "IsClosed = true", "ORDER BY Name") == ["Big", "Nothing"]
    assert _names(store, "Id != null", "ORDER BY Amount") == ["Nothing", "small", "Big"]
    assert _names(store, "Id != null", "ORDER BY Amount DESC") == ["Big", "small", "Nothing"]
    assert _names(store, "Id != null", "ORDER BY Amount ASC NULLS LAST LIMIT 2") == [
        "small",
        "Big",
    ]


def test_fifteen_character_ids_match_their_eighteen_character_form(store: Store) -> None:
    account = store.query("SELECT Id FROM Account WHERE Name = 'Acme GmbH'", version=V)
    full = account["records"][0]["Id"]
    assert id18(full[:15]) == full
    assert sorted(_names(store, f"AccountId = '{full[:15]}'")) == ["Big", "small"]


def test_parent_relationship_fields_nest_or_are_null(store: Store) -> None:
    page = store.query(
        "SELECT Name, Parent.Name, Parent.BillingCountry FROM Account ORDER BY Name", version=V
    )
    acme, zeta = page["records"]
    assert acme["Parent"] is None
    assert zeta["Parent"]["Name"] == "Acme GmbH"
    assert zeta["Parent"]["BillingCountry"] == "DE"
    assert zeta["Parent"]["attributes"]["type"] == "Account"


def test_datetime_filter_on_system_modstamp(store: Store) -> None:
    page = store.query(
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2000-01-01T00:00:00Z", version=V
    )
    assert page["totalSize"] == 3
    page = store.query(
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2999-01-01T00:00:00Z", version=V
    )
    assert page["totalSize"] == 0


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Nope FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Nope = 1", "INVALID_FIELD"),
        ("SELECT Owner.Name FROM Opportunity", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Amount = '5'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Name = 5", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE CloseDate = 2026-01-01T00:00:00Z", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE SystemModstamp > '2026-01-01'", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE IsWon > true", "INVALID_FIELD"),
        ("SELECT Id FROM Opportunity WHERE Amount LIKE '5%'", "INVALID_FIELD"),
        ("SELECT Id FROM Lead", "INVALID_TYPE"),
        ("SELECT Id FROM", "MALFORMED_QUERY"),
    ],
)
def test_query_errors_carry_salesforce_codes(store: Store, soql: str, code: str) -> None:
    with pytest.raises(SalesforceError) as info:
        store.query(soql, version=V)
    assert info.value.code == code
    assert info.value.status == 400

"""The sandbox's Product2, Pricebook2 and PricebookEntry, driven by simple-salesforce."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _body(exc: BaseException) -> Any:
    return getattr(exc, "content")  # noqa: B009


def _standard(sf: Any) -> str:
    rows = sf.query("SELECT Id, Name FROM Pricebook2 WHERE IsStandard = true")["records"]
    assert len(rows) == 1 and rows[0]["Name"] == "Standard Price Book"
    return str(rows[0]["Id"])


def test_a_standard_price_shows_the_products_code_and_is_unique_per_currency(sf: Any) -> None:
    code = f"PRO-{uuid.uuid4().hex[:6]}"
    product = sf.Product2.create({"Name": "Pro", "ProductCode": code, "IsActive": True})
    book = _standard(sf)
    entry = sf.PricebookEntry.create(
        {"Pricebook2Id": book, "Product2Id": product["id"], "UnitPrice": 199, "IsActive": True}
    )
    rows = sf.query(
        "SELECT Id, UnitPrice, ProductCode, Product2.ProductCode, CurrencyIsoCode "
        f"FROM PricebookEntry WHERE ProductCode = '{code}'"
    )["records"]
    assert [(r["Id"], r["UnitPrice"], r["Product2"]["ProductCode"]) for r in rows] == [
        (entry["id"], 199.0, code)
    ]
    assert rows[0]["CurrencyIsoCode"] == "USD"
    with pytest.raises(SalesforceMalformedRequest) as twice:
        sf.PricebookEntry.create(
            {"Pricebook2Id": book, "Product2Id": product["id"], "UnitPrice": 150}
        )
    assert _body(twice.value)[0]["errorCode"] == "DUPLICATE_VALUE"
    sf.PricebookEntry.update(entry["id"], {"UnitPrice": 249})
    assert sf.PricebookEntry.get(entry["id"])["UnitPrice"] == 249.0


def test_a_custom_price_needs_a_standard_price_and_keys_are_fixed(sf: Any) -> None:
    product = sf.Product2.create({"Name": "Seats", "ProductCode": f"S-{uuid.uuid4().hex[:6]}"})
    custom = sf.Pricebook2.create({"Name": "Partners", "IsActive": True})
    with pytest.raises(SalesforceMalformedRequest) as first:
        sf.PricebookEntry.create(
            {"Pricebook2Id": custom["id"], "Product2Id": product["id"], "UnitPrice": 10}
        )
    assert _body(first.value)[0]["errorCode"] == "STANDARD_PRICE_NOT_DEFINED"
    standard = sf.PricebookEntry.create(
        {"Pricebook2Id": _standard(sf), "Product2Id": product["id"], "UnitPrice": 15}
    )
    sf.PricebookEntry.create(
        {"Pricebook2Id": custom["id"], "Product2Id": product["id"], "UnitPrice": 10}
    )
    with pytest.raises(SalesforceMalformedRequest) as moved:
        sf.PricebookEntry.update(standard["id"], {"Pricebook2Id": custom["id"]})
    assert _body(moved.value)[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest) as standard_flag:
        sf.Pricebook2.create({"Name": "Mine", "IsStandard": True})
    assert _body(standard_flag.value)[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"

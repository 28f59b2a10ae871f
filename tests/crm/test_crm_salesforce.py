"""SalesforceAdapter against the running Salesforce sandbox."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters import BillingInterval, RetryPolicy, retry_call
from adapters.crm import SalesforceAdapter
from adapters.sandbox import free_port
from adapters.sandbox.salesforce import SalesforceSandbox
from tracing import (
    AuthError,
    DownstreamUnavailable,
    MappingError,
    RateLimited,
    Reason,
    ValidationError,
)

# The ``seed`` fixture (conftest.py's Seeder) is typed loosely: sibling test folders
# each have a conftest module, so it is not imported by name.
Seeder = Any


def _won_deal(seed: Seeder, **overrides: Any) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    account = seed.create(
        "Account",
        Name=f"Acme {tag}",
        BillingCountry="DE",
        Phone="+49 30 1234",
        Contact_Email__c=f"ap-{tag}@acme.example",
    )
    plan = seed.create("Product2", Name="Pro plan", ProductCode=f"PRO-{tag}")
    seats = seed.create("Product2", Name="Extra seats", ProductCode=f"SEAT-{tag}")
    fields: dict[str, Any] = {
        "Name": f"Deal {tag}",
        "AccountId": account,
        "StageName": "Closed Won",
        "CloseDate": "2026-12-15",
        "Amount": 1250.50,
        "CurrencyIsoCode": "EUR",
        "Billing_Interval__c": "Annual",
        "Payment_Terms__c": "NET45",
    }
    fields.update(overrides)
    opp = seed.create("Opportunity", **fields)
    seed.create(
        "OpportunityLineItem", OpportunityId=opp, Product2Id=plan, Quantity=1, UnitPrice=1000.50
    )
    seed.create(
        "OpportunityLineItem", OpportunityId=opp, Product2Id=seats, Quantity=5, UnitPrice=50
    )
    return {"tag": tag, "account": account, "opp": opp, "plan": plan, "seats": seats}


async def test_health(adapter: SalesforceAdapter, sf_sandbox: SalesforceSandbox) -> None:
    assert await adapter.health() is True
    async with SalesforceAdapter(sf_sandbox.url, "bad", verify=sf_sandbox.ca_file) as stranger:
        assert await stranger.health() is False


async def test_load_order_happy_path(adapter: SalesforceAdapter, seed: Seeder) -> None:
    deal = _won_deal(seed)
    order = await adapter.load_order(deal["opp"])
    assert order.order_ref == deal["opp"]
    assert order.currency == "EUR"
    assert order.total == Decimal("1250.50")
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        (f"PRO-{deal['tag']}", Decimal("1"), Decimal("1000.5")),
        (f"SEAT-{deal['tag']}", Decimal("5"), Decimal("50")),
    ]
    assert order.lines[0].description == "Pro plan"
    assert order.billing_interval is BillingInterval.YEAR
    assert order.payment_terms == "NET45"
    assert order.close_date == date(2026, 12, 15)
    customer = order.customer
    assert customer.customer_id == customer.crm_account_id == deal["account"]
    assert customer.email == f"ap-{deal['tag']}@acme.example"
    assert (customer.phone, customer.country) == ("+49 30 1234", "DE")


async def test_get_customer_carries_the_parent(adapter: SalesforceAdapter, seed: Seeder) -> None:
    parent = seed.create("Account", Name="Holding")
    child = seed.create("Account", Name="Subsidiary", ParentId=parent)
    customer = await adapter.get_customer(child)
    assert (customer.name, customer.parent_customer_id, customer.email) == (
        "Subsidiary",
        parent,
        None,
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"Amount": None}, "Amount"),
        ({"CurrencyIsoCode": None}, "CurrencyIsoCode"),
        ({"AccountId": None}, "AccountId"),
        ({"Amount": 999}, "Amount"),  # differs from the sum of the lines
    ],
)
async def test_load_order_validation_errors(
    adapter: SalesforceAdapter, seed: Seeder, overrides: dict[str, Any], field: str
) -> None:
    deal = _won_deal(seed, **overrides)
    with pytest.raises(ValidationError) as info:
        await adapter.load_order(deal["opp"])
    assert type(info.value) is ValidationError
    assert info.value.field == field
    assert info.value.reason is Reason.VALIDATION and not info.value.retriable


async def test_load_order_without_lines(adapter: SalesforceAdapter, seed: Seeder) -> None:
    account = seed.create("Account", Name="Lonely")
    opp = seed.create(
        "Opportunity",
        Name="Empty",
        AccountId=account,
        StageName="Closed Won",
        CloseDate="2026-12-01",
        Amount=10,
        CurrencyIsoCode="USD",
    )
    with pytest.raises(ValidationError) as info:
        await adapter.load_order(opp)
    assert info.value.field == "lines"


async def test_unknown_product_code_is_a_mapping_error(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    deal = _won_deal(seed)
    seed.update("Product2", deal["seats"], ProductCode=None)
    with pytest.raises(MappingError) as info:
        await adapter.load_order(deal["opp"])
    assert info.value.field == "lines[1].sku"
    assert info.value.reason is Reason.MAPPING


async def test_unmapped_billing_interval_is_a_mapping_error(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    deal = _won_deal(seed, Billing_Interval__c="Fortnightly")
    with pytest.raises(MappingError) as info:
        await adapter.load_order(deal["opp"])
    assert info.value.field == "Billing_Interval__c"


async def test_bad_and_unknown_ids(adapter: SalesforceAdapter) -> None:
    with pytest.raises(ValidationError) as bad:
        await adapter.load_order("006' OR Name != '")
    assert bad.value.field == "opportunity_id"
    with pytest.raises(ValidationError):  # 404 NOT_FOUND
        await adapter.load_order("006Wz0000099999ZZZ")


async def test_opportunity_changes_since_a_time(adapter: SalesforceAdapter, seed: Seeder) -> None:
    deal = _won_deal(seed, StageName="Prospecting")
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    seed.update("Opportunity", deal["opp"], StageName="Closed Won")
    changes = await adapter.opportunity_changes(since)
    assert [c.opportunity_id for c in changes] == [deal["opp"]]
    change = changes[0]
    assert (change.stage, change.is_won, change.account_id) == ("Closed Won", True, deal["account"])
    assert change.account_name is not None and change.account_name.startswith("Acme ")
    assert (change.amount, change.currency) == (Decimal("1250.5"), "EUR")
    assert change.modstamp > since
    assert await adapter.opportunity_changes(change.modstamp) == []


async def test_touch_redelivers_an_unchanged_opportunity(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    deal = _won_deal(seed)
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    seed.update("Opportunity", deal["opp"], Payment_Terms__c="NET30")
    (first,) = await adapter.opportunity_changes(since)
    seed.control(f"touch/{deal['opp']}")
    (again,) = await adapter.opportunity_changes(first.modstamp)
    assert again.opportunity_id == first.opportunity_id and again.modstamp > first.modstamp
    assert (again.stage, again.amount) == (first.stage, first.amount)


async def test_opportunity_changes_follow_next_records_url(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    since = datetime.now(UTC) - timedelta(milliseconds=1)
    made = [
        seed.create(
            "Opportunity", Name=f"bulk {i}", StageName="Prospecting", CloseDate="2026-12-01"
        )
        for i in range(230)  # more than one 200-row page
    ]
    changes = await adapter.opportunity_changes(since)
    assert [c.opportunity_id for c in changes] == made
    stamps = [c.modstamp for c in changes]
    assert stamps == sorted(stamps)


async def test_naive_since_is_refused(adapter: SalesforceAdapter) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await adapter.opportunity_changes(datetime(2026, 1, 1))


async def test_request_limit_exceeded_is_rate_limited_and_retried(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    deal = _won_deal(seed)
    seed.control("faults", {"rate_limit_next": 1})
    with pytest.raises(RateLimited) as info:
        await adapter.load_order(deal["opp"])
    assert info.value.status == 403 and info.value.retriable

    seed.control("faults", {"rate_limit_next": 2})
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    order = await retry_call(
        lambda: adapter.load_order(deal["opp"]), RetryPolicy(base_delay=0.01), sleep=sleep
    )
    assert order.order_ref == deal["opp"] and len(waits) == 2


async def test_auth_unavailable_and_transport_errors(
    sf_sandbox: SalesforceSandbox, seed: Seeder
) -> None:
    async with SalesforceAdapter(sf_sandbox.url, "bad", verify=sf_sandbox.ca_file) as stranger:
        with pytest.raises(AuthError) as auth:
            await stranger.get_customer("001Wz0000000001IAA")
        assert auth.value.status == 401
    seed.control("faults", {"fail_next": 1})
    async with SalesforceAdapter(sf_sandbox.url, sf_sandbox.token, verify=sf_sandbox.ca_file) as sf:
        with pytest.raises(DownstreamUnavailable) as down:
            await sf.get_customer("001Wz0000000001IAA")
        assert down.value.status == 503 and down.value.retriable
    async with SalesforceAdapter(f"https://127.0.0.1:{free_port()}", "t", timeout=1) as closed:
        with pytest.raises(DownstreamUnavailable):
            await closed.opportunity_changes(datetime.now(UTC))


def test_repr_never_shows_the_token(sf_sandbox: SalesforceSandbox) -> None:
    adapter = SalesforceAdapter(sf_sandbox.url, sf_sandbox.token)
    assert sf_sandbox.token not in repr(adapter)


async def test_the_sandbox_clock_stamps_changes_in_the_past_for_the_change_feed(
    adapter: SalesforceAdapter, seed: Seeder
) -> None:
    from datetime import UTC, datetime, timedelta

    account = seed.create("Account", Name="Clockwork Ltd")
    try:
        answer = seed.control("clock", {"offset_seconds": -3600})
        assert abs(
            datetime.fromisoformat(answer["now"]) - (datetime.now(UTC) - timedelta(hours=1))
        ) < timedelta(seconds=30)
        opp = seed.create(
            "Opportunity",
            Name="Back then",
            AccountId=account,
            StageName="Closed Won",
            CloseDate="2026-01-01",
        )
    finally:
        seed.control("clock", {"offset_seconds": 0})
    [change] = [
        c
        for c in await adapter.opportunity_changes(datetime.now(UTC) - timedelta(hours=2))
        if c.opportunity_id == opp
    ]
    assert change.modstamp < datetime.now(UTC) - timedelta(minutes=55)
    with pytest.raises(Exception, match="400"):
        seed.control("clock", {"offset_seconds": "soon"})

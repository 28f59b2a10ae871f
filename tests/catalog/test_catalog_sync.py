"""A catalog change in the real Tryton reaches the Salesforce sandbox (Product2 and its
standard PricebookEntry, read back with simple-salesforce) and localstripe (product and
plans, read back with the stripe client), each sync a traced step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from conftest import RecordingBus

from adapters import RetryPolicy
from adapters.catalog import CHANGE_KIND, CatalogPoller, CatalogSync, TrytonCatalog
from adapters.flows import StepRunner
from adapters.sandbox.localstripe import LocalStripeServer
from tracing import Status

TODAY = datetime.now(UTC).date()
NEXT_MONTH = (TODAY.replace(day=1) + timedelta(days=32)).replace(day=1)


def _stripe(server: LocalStripeServer) -> Any:
    return stripe.StripeClient(server.api_key, base_addresses={"api": server.url})


async def _changes(poller: CatalogPoller, sku: str) -> list[Any]:
    return [e for e in await poller.poll_once() if e.entity_id == sku]


async def test_a_catalog_change_reaches_product2_pricebookentry_and_billing(
    catalog: TrytonCatalog, crm, billing, sf, localstripe, new_product, bus: RecordingBus
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    sku = await new_product("120", name="Analytics add-on")
    poller = CatalogPoller(catalog, bus, since=started)  # type: ignore[arg-type]
    flow = CatalogSync(
        bus,  # type: ignore[arg-type]
        StepRunner(bus, RetryPolicy(max_attempts=2, base_delay=0.01)),  # type: ignore[arg-type]
        catalog=catalog,
        crm=crm,
        billing=billing,
    )

    [created] = await _changes(poller, sku)
    assert created.kind == CHANGE_KIND and created.step == "erp.catalog.change"
    await flow.handle(created)
    synced = {e.step: e for e in bus.events if e.correlation_id == created.correlation_id}
    assert {s: e.status for s, e in synced.items()} == {
        "erp.catalog.change": Status.OK,  # the poller's own event
        "crm.product.sync": Status.OK,
        "billing.product.sync": Status.OK,
    }
    crm_step = synced["crm.product.sync"]
    assert crm_step.causation_id == created.event_id and crm_step.trace_id

    [entry] = sf.query(
        "SELECT Id, UnitPrice, IsActive, Product2Id, Product2.Name, Product2.IsActive "
        f"FROM PricebookEntry WHERE ProductCode = '{sku}' AND Pricebook2.IsStandard = true"
    )["records"]
    assert (entry["UnitPrice"], entry["IsActive"], entry["Product2"]["Name"]) == (
        120.0,
        True,
        "Analytics add-on",
    )

    client = _stripe(localstripe)
    product_id = synced["billing.product.sync"].payload["billing_product_id"]
    assert client.v1.products.retrieve(product_id).name == "Analytics add-on"
    plans = [p for p in client.v1.plans.list({"limit": 100}).data if p.product == product_id]
    assert [(p.amount, p.interval) for p in plans] == [(12000, "month")]

    # A price change next month: a new plan for the new version; the CRM keeps today's
    # price (the entry shows the price in force, 120, until the version starts).
    bus.events.clear()
    await catalog.set_price(sku, Decimal("150"), effective_from=NEXT_MONTH)
    [changed] = await _changes(poller, sku)
    assert changed.correlation_id != created.correlation_id  # a new catalog version
    await flow.handle(changed)
    assert sf.PricebookEntry.get(entry["Id"])["UnitPrice"] == 120.0
    plans = [p for p in client.v1.plans.list({"limit": 100}).data if p.product == product_id]
    assert sorted(p.amount for p in plans) == [12000, 15000]
    new_plan = next(p for p in plans if p.amount == 15000)
    assert new_plan.metadata["effective_from"] == NEXT_MONTH.isoformat()

    # Retiring the product deactivates it in both systems; the same change read again
    # (the poll's overlap) is recognised, not repeated.
    bus.events.clear()
    await catalog.retire(sku)
    [retired] = await _changes(poller, sku)
    await flow.handle(retired)
    assert sf.Product2.get(entry["Product2Id"])["IsActive"] is False
    assert sf.PricebookEntry.get(entry["Id"])["IsActive"] is False
    # localstripe keeps an updated flag as the form sent it ("false"); Stripe answers false.
    assert str(client.v1.products.retrieve(product_id).active).lower() == "false"
    assert await _changes(poller, sku) == []


async def test_a_failed_crm_sync_is_a_dead_letter_and_billing_still_syncs(
    catalog: TrytonCatalog, billing, sf_sandbox, new_product, bus: RecordingBus
) -> None:
    from adapters.crm import SalesforceAdapter

    sku = await new_product("60")
    started = datetime.now(UTC) - timedelta(seconds=5)
    poller = CatalogPoller(catalog, bus, since=started)  # type: ignore[arg-type]
    async with SalesforceAdapter(
        sf_sandbox.url, "not-a-valid-session", verify=sf_sandbox.ca_file, timeout=5.0
    ) as bad_crm:
        flow = CatalogSync(
            bus,  # type: ignore[arg-type]
            StepRunner(bus, RetryPolicy(max_attempts=1)),  # type: ignore[arg-type]
            catalog=catalog,
            crm=bad_crm,
            billing=billing,
        )
        [event] = await _changes(poller, sku)
        await flow.handle(event)
    outcomes = {e.step: e for e in bus.events if e.causation_id == event.event_id}
    assert outcomes["crm.product.sync"].status == Status.DEAD_LETTERED
    assert outcomes["billing.product.sync"].status == Status.OK


async def test_a_version_coming_into_force_moves_the_crm_price_on_its_day(
    catalog: TrytonCatalog, crm, billing, sf, new_product, bus: RecordingBus
) -> None:
    sku = await new_product("70")
    await catalog.set_price(sku, Decimal("90"), effective_from=NEXT_MONTH)
    day = {"today": TODAY}
    started = datetime.now(UTC) - timedelta(seconds=5)
    poller = CatalogPoller(catalog, bus, since=started, today=lambda: day["today"])  # type: ignore[arg-type]
    flow = CatalogSync(
        bus,  # type: ignore[arg-type]
        StepRunner(bus, RetryPolicy(max_attempts=1)),  # type: ignore[arg-type]
        catalog=catalog,
        crm=crm,
        billing=billing,
        today=lambda: day["today"],
    )
    [written] = await _changes(poller, sku)
    await flow.handle(written)

    def crm_price() -> float:
        [row] = sf.query(
            "SELECT UnitPrice FROM PricebookEntry "
            f"WHERE ProductCode = '{sku}' AND Pricebook2.IsStandard = true"
        )["records"]
        return float(row["UnitPrice"])

    assert crm_price() == 70.0
    assert await _changes(poller, sku) == []  # nothing new the same day

    day["today"] = NEXT_MONTH  # the version's first day: no write in the ERP that day
    [in_force] = await _changes(poller, sku)
    assert in_force.correlation_id != written.correlation_id
    await flow.handle(in_force)
    assert crm_price() == 90.0
    assert await _changes(poller, sku) == []  # announced once

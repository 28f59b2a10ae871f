"""Order pre-validation against the real Tryton catalog: contract-effective dating, retired
products and the master-data checks, each refused with a named reason."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import RecordingBus

from adapters import Customer, OrderLine, RetryPolicy, SalesOrder
from adapters.catalog import (
    CatalogChecks,
    IncompleteAccount,
    PriceMismatch,
    RetiredProduct,
    TaxNotConfigured,
    TrytonCatalog,
    UnknownBillingTerms,
    UnknownProduct,
)
from adapters.flows import QuoteToCash, StepRunner
from tracing import Event, Status, System

TODAY = datetime.now(UTC).date()
NEXT_MONTH = (TODAY.replace(day=1) + timedelta(days=32)).replace(day=1)


def _customer(**fields: object) -> Customer:
    values: dict[str, object] = {
        "customer_id": "001" + uuid.uuid4().hex[:15],
        "name": "Acme GmbH",
        "email": "ap@acme.example",
        "country": "DE",
        **fields,
    }
    return Customer.model_validate(values)


def _order(
    sku: str, price: str, *, on: date | None = TODAY, customer: Customer | None = None, **kw: object
) -> SalesOrder:
    return SalesOrder.model_validate(
        {
            "order_ref": "006" + uuid.uuid4().hex[:15],
            "customer": customer or _customer(),
            "currency": "USD",
            "lines": [
                OrderLine(sku="PLAT-PRO", quantity=Decimal(1), unit_price=Decimal("199")),
                OrderLine(sku=sku, quantity=Decimal(2), unit_price=Decimal(price)),
            ],
            "close_date": on,
            **kw,
        }
    )


async def test_a_price_change_next_month_does_not_affect_an_order_dated_today(
    catalog: TrytonCatalog, new_product
) -> None:
    sku = await new_product("120")
    version = await catalog.set_price(sku, Decimal("150"), effective_from=NEXT_MONTH)
    checks = CatalogChecks(catalog)

    await checks.check(_order(sku, "120"))  # today: the price in force is still 120

    with pytest.raises(PriceMismatch) as early:
        await checks.check(_order(sku, "150"))
    assert early.value.field == "lines[1].unit_price"
    assert (early.value.expected, early.value.given) == ("120 USD", "150 USD")
    assert "line 2" in early.value.message and sku in early.value.message

    # An order whose contract starts next month is priced by the new version.
    await checks.check(_order(sku, "150", on=NEXT_MONTH))
    with pytest.raises(PriceMismatch) as late:
        await checks.check(_order(sku, "120", on=NEXT_MONTH))
    assert (late.value.expected, late.value.given, late.value.version) == (
        "150 USD",
        "120 USD",
        version,
    )

    product = (await catalog.products([sku]))[sku]
    assert [(p.unit_price, p.effective_from, p.effective_to) for p in product.prices] == [
        (Decimal("120"), None, NEXT_MONTH - timedelta(days=1)),
        (Decimal("150"), NEXT_MONTH, None),
    ]


async def test_an_order_for_a_retired_product_is_refused_with_the_reason(
    catalog: TrytonCatalog, new_product
) -> None:
    sku = await new_product("80")
    checks = CatalogChecks(catalog)
    await checks.check(_order(sku, "80"))
    await catalog.retire(sku)
    with pytest.raises(RetiredProduct) as refused:
        await checks.check(_order(sku, "80"))
    assert refused.value.field == "lines[1].sku"
    assert f"line 2 ({sku})" in refused.value.message and "retired" in refused.value.message
    assert not (await catalog.products([sku]))[sku].active

    with pytest.raises(UnknownProduct):
        await checks.check(_order("NOPE-" + uuid.uuid4().hex[:6], "1"))


async def test_the_master_data_checks_each_have_a_named_reason(
    catalog: TrytonCatalog, new_product
) -> None:
    sku = await new_product("40")
    checks = CatalogChecks(catalog)
    with pytest.raises(IncompleteAccount) as no_country:
        await checks.check(_order(sku, "40", customer=_customer(country=None)))
    assert no_country.value.field == "customer.country"
    with pytest.raises(IncompleteAccount) as no_email:
        await checks.check(_order(sku, "40", customer=_customer(email=None)))
    assert no_email.value.field == "customer.email"
    with pytest.raises(TaxNotConfigured) as no_tax:
        await checks.check(_order(sku, "40", customer=_customer(country="JP")))
    assert "JP" in no_tax.value.message
    # A country mapped to a tax the ERP does not hold is refused as well.
    unmapped = CatalogChecks(catalog, taxes={"DE": "DE VAT 7% (never set up)"})
    with pytest.raises(TaxNotConfigured):
        await unmapped.check(_order(sku, "40"))
    with pytest.raises(UnknownBillingTerms) as terms:
        await checks.check(_order(sku, "40", payment_terms="NET90"))
    assert terms.value.field == "payment_terms"


class _Crm:
    def __init__(self, order: SalesOrder) -> None:
        self.order = order

    async def load_order(self, opportunity_id: str) -> SalesOrder:
        return self.order


async def test_quote_to_cash_dead_letters_the_order_naming_line_expected_and_given(
    catalog: TrytonCatalog, erp, new_product, bus: RecordingBus
) -> None:
    sku = await new_product("120")
    await catalog.set_price(sku, Decimal("150"), effective_from=NEXT_MONTH)
    order = _order(sku, "150")  # today's price is 120
    flow = QuoteToCash(
        bus,  # type: ignore[arg-type]
        StepRunner(bus, RetryPolicy(max_attempts=1)),  # type: ignore[arg-type]
        crm=_Crm(order),  # type: ignore[arg-type]
        erp=erp,
        billing=None,  # type: ignore[arg-type]
        support=None,  # type: ignore[arg-type]
        checks=[CatalogChecks(catalog).check],
    )
    cause = Event(
        correlation_id="c-" + order.order_ref,
        idempotency_key="crm:" + order.order_ref,
        source=System.CRM,
        target=System.INTERLOCK,
        kind="opportunity.closed_won",
        step="crm.opportunity.closed_won",
        entity_type="opportunity",
        entity_id=order.order_ref,
        status=Status.OK,
        payload={"order_ref": order.order_ref},
    )
    await flow.handle(cause)
    [dead] = bus.events
    assert dead.status == Status.DEAD_LETTERED and dead.step == "erp.order.create"
    assert dead.error is not None and dead.error.error_type == "PriceMismatch"
    assert "line 2" in dead.error.message
    assert "expected 120 USD" in dead.error.message and "given 150 USD" in dead.error.message
    assert await erp.find_sale(order.order_ref) is None  # nothing was written to the ERP

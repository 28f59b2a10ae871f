"""The demo traffic changes a price in the real ERP, effective next month, and the deals it
closes today still pass the catalog's pre-validation at today's price."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from adapters import Customer, OrderLine, SalesOrder
from adapters.catalog import CatalogChecks, PriceMismatch, TrytonCatalog
from adapters.erp import TrytonAdapter
from adapters.sandbox._traffic import CATALOG, TrafficGenerator
from adapters.sandbox.salesforce import SalesforceSandbox
from adapters.sandbox.tryton import TrytonServer, build_template


async def test_demo_traffic_includes_a_price_change_effective_next_month(
    sf_sandbox: SalesforceSandbox,
) -> None:
    # A server of its own: the change touches the shared demo products.
    build_template()
    server = TrytonServer().start()
    try:
        async with TrytonAdapter(server.url, server.database, server.user, server.password) as erp:
            catalog = TrytonCatalog(erp.rpc)
            traffic = TrafficGenerator(
                sf_sandbox.url,
                sf_sandbox.token,
                ca_file=sf_sandbox.ca_file,
                faults=False,
                seed=7,
                price_change=catalog.set_price,
            )
            try:
                version = await traffic.change_price()
            finally:
                await traffic.stop()
            [change] = traffic.stats.price_changes
            sku = change.split()[0]
            today = datetime.now(UTC).date()
            first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
            product = (await catalog.products([sku]))[sku]
            assert product.prices[-1].version == version
            assert product.prices[-1].effective_from == first
            old = Decimal(CATALOG[sku][1])
            assert product.prices[-1].unit_price == (old * Decimal("1.1")).quantize(Decimal(1))

            def deal(on: object) -> SalesOrder:
                return SalesOrder.model_validate(
                    {
                        "order_ref": "006" + uuid.uuid4().hex[:15],
                        "customer": Customer(
                            customer_id="001" + uuid.uuid4().hex[:15],
                            name="Hooli Inc",
                            email="ada@hooli.example",
                            country="US",
                        ),
                        "currency": "USD",
                        "lines": [OrderLine(sku=sku, quantity=Decimal(2), unit_price=old)],
                        "close_date": on,
                    }
                )

            checks = CatalogChecks(catalog)
            await checks.check(deal(today))  # today's deals keep today's price
            try:
                await checks.check(deal(first))
            except PriceMismatch as exc:
                assert exc.expected == f"{product.prices[-1].unit_price} USD"
            else:
                raise AssertionError("a deal dated next month at the old price passed")
    finally:
        server.stop()

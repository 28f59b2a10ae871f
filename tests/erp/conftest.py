"""One real Tryton server for the ERP tests (session scope), and an adapter per test."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal

import pytest

from adapters._canonical import Customer, OrderLine, SalesOrder
from adapters.erp import TrytonAdapter
from adapters.sandbox.tryton import TrytonServer, build_template


@pytest.fixture(scope="session")
def tryton_server() -> Iterator[TrytonServer]:
    started = time.perf_counter()
    build_template()
    built = time.perf_counter()
    server = TrytonServer().start()
    ready = time.perf_counter()
    print(f"\ntryton template {built - started:.1f}s, server start {ready - built:.1f}s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def erp(tryton_server: TrytonServer) -> AsyncIterator[TrytonAdapter]:
    async with TrytonAdapter(
        tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password
    ) as adapter:
        yield adapter


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_order() -> Callable[..., SalesOrder]:
    def make(
        *lines: tuple[str, str, str], customer: Customer | None = None, ref: str | None = None
    ) -> SalesOrder:
        customer = customer or Customer(customer_id=unique("ACC"), name="Acme Corp")
        items = lines or (("PLAT-PRO", "2", "199"),)
        return SalesOrder(
            order_ref=ref or unique("OPP"),
            customer=customer,
            currency="USD",
            lines=[
                OrderLine(sku=sku, quantity=Decimal(qty), unit_price=Decimal(price))
                for sku, qty, price in items
            ],
        )

    return make

"""Catalog fixtures: one real Tryton (the ERP owns the catalog), the Salesforce sandbox and
localstripe per session, and a product of its own for each test (the database is shared)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from adapters.billing import BillingAdapter
from adapters.catalog import TrytonCatalog
from adapters.crm import SalesforceAdapter
from adapters.erp import TrytonAdapter
from adapters.sandbox.localstripe import LocalStripeServer
from adapters.sandbox.salesforce import SalesforceSandbox
from adapters.sandbox.tryton import TrytonServer, build_template
from tracing import Event


@pytest.fixture(scope="session")
def tryton_server() -> Iterator[TrytonServer]:
    build_template()
    server = TrytonServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sf_sandbox() -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripeServer]:
    with LocalStripeServer() as server:
        yield server


@pytest.fixture
async def erp(tryton_server: TrytonServer) -> AsyncIterator[TrytonAdapter]:
    async with TrytonAdapter(
        tryton_server.url, tryton_server.database, tryton_server.user, tryton_server.password
    ) as adapter:
        yield adapter


@pytest.fixture
def catalog(erp: TrytonAdapter) -> TrytonCatalog:
    return TrytonCatalog(erp.rpc)


@pytest.fixture
async def crm(sf_sandbox: SalesforceSandbox) -> AsyncIterator[SalesforceAdapter]:
    async with SalesforceAdapter(
        sf_sandbox.url, sf_sandbox.token, verify=sf_sandbox.ca_file, timeout=5.0
    ) as sf:
        yield sf


@pytest.fixture
async def billing(localstripe: LocalStripeServer) -> AsyncIterator[BillingAdapter]:
    async with BillingAdapter(localstripe.url, localstripe.api_key) as adapter:
        yield adapter


@pytest.fixture
def sf(sf_sandbox: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """simple-salesforce against the sandbox, to read what the sync wrote."""
    from simple_salesforce.api import Salesforce

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sf_sandbox.ca_file)
    return Salesforce(session_id=sf_sandbox.token, instance_url=sf_sandbox.url, version="60.0")


@pytest.fixture
async def new_product(erp: TrytonAdapter) -> Any:
    """Make a salable service product in the ERP with one open-ended catalog price, as a
    catalog manager would in Tryton; returns its SKU."""

    async def make(price: str = "120", name: str = "Analytics add-on") -> str:
        rpc = erp.rpc
        sku = f"CAT-{uuid.uuid4().hex[:8].upper()}"
        (category,) = await rpc.call(
            "model.product.category.search", [["name", "=", "Subscriptions and services"]]
        )
        (unit,) = await rpc.call("model.product.uom.search", [["name", "=", "Unit"]])
        (template,) = await rpc.call(
            "model.product.template.create",
            [
                {
                    "name": name,
                    "code": sku,
                    "type": "service",
                    "salable": True,
                    "default_uom": unit,
                    "sale_uom": unit,
                    "list_price": Decimal(price),
                    "account_category": category,
                    "products": [["create", [{}]]],
                }
            ],
        )
        (product,) = await rpc.call("model.product.product.search", [["template", "=", template]])
        (price_list,) = await rpc.call(
            "model.product.price_list.search", [["name", "=", "Catalog"]]
        )
        await rpc.call(
            "model.product.price_list.line.create",
            [{"price_list": price_list, "product": product, "formula": price}],
        )
        return sku

    return make


class RecordingBus:
    """What a step publishes (``StepRunner`` needs only ``publish``)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()

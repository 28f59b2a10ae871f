"""The product-catalog flow: an ERP catalog change reaches the CRM and billing.

    erp.catalog.change (write_date poll) ─▶ catalog.product.changed
        ─▶ crm.product.sync      (Product2 + standard PricebookEntry at today's price)
        ─▶ billing.product.sync  (billing product + one plan per price version)

Each sync is a traced step through ``StepRunner`` (retry, idempotency key, dead letter)
and reloads the product from the ERP instead of trusting the stored payload: the ERP
owns the catalog, and a replay publishes what it holds now. A failed sync moves no
money by itself (no order has used the change yet): its rules say so with
``risk: latent`` (see ``catalog.yaml``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from collector import Bus, FlowSpec, FlowStep, FlowSteps
from tracing import Event, MappingError, Status

from .._canonical import Product, ProductPrice
from ..flows import StepOutcome, StepRunner

__all__ = ["CHANGE_KIND", "SPEC", "STEPS", "CatalogSync"]

#: The kind of a catalog change event (the poller's) and its ingress step.
CHANGE_KIND = "catalog.product.changed"
CHANGE_STEP = "erp.catalog.change"
STEPS = FlowSteps(
    flow="product-catalog",
    trigger=CHANGE_KIND,
    steps=(
        FlowStep("crm.product.sync", timedelta(minutes=15), kind="product.synced.crm"),
        FlowStep("billing.product.sync", timedelta(minutes=15), kind="product.synced.billing"),
    ),
)
_ACTIONABLE = frozenset({Status.OK, Status.REPLAYED})


class CatalogSource(Protocol):
    async def products(self, skus: list[str] | None = None) -> dict[str, Product]: ...


class CrmCatalogPort(Protocol):
    async def sync_product(self, product: Product, price: ProductPrice | None) -> Any: ...


class BillingCatalogPort(Protocol):
    async def sync_product(self, product: Product) -> tuple[str, list[str]]: ...


class CatalogSync:
    """The flow object (``collector.Flow``): ``spec``, ``handle``, ``probe``."""

    def __init__(
        self,
        bus: Bus,
        runner: StepRunner,
        *,
        catalog: CatalogSource,
        crm: CrmCatalogPort,
        billing: BillingCatalogPort,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._bus = bus
        self._run = runner
        self._catalog = catalog
        self._crm = crm
        self._billing = billing
        self._today = today

    @property
    def spec(self) -> FlowSpec:
        return SPEC

    async def handle(self, event: Event) -> None:
        if event.status not in _ACTIONABLE:
            return
        for react in _REACTIONS.get(event.kind, ()):
            await react(self, event)

    async def _product(self, cause: Event) -> Product:
        sku = str(cause.payload.get("sku") or cause.entity_id)
        found = (await self._catalog.products([sku])).get(sku)
        if found is None:
            raise MappingError(f"the ERP catalog has no product {sku!r}", field="sku")
        return found

    async def _sync_crm(self, cause: Event) -> None:
        async def action(_: str) -> StepOutcome:
            product = await self._product(cause)
            price = product.price_on(self._today()) if product.active else None
            ref = await self._crm.sync_product(product, price)
            return StepOutcome(
                "product",
                product.sku,
                {
                    "sku": product.sku,
                    "catalog_version": product.catalog_version,
                    "product2_id": ref.product_id,
                    "pricebook_entry_id": ref.pricebook_entry_id,
                    "unit_price": str(price.unit_price) if price else None,
                    "price_version": price.version if price else None,
                    "active": ref.active,
                },
            )

        await self._run.run(
            cause,
            kind="product.synced.crm",
            step="crm.product.sync",
            target="crm",
            action=action,
        )

    async def _sync_billing(self, cause: Event) -> None:
        async def action(_: str) -> StepOutcome:
            product = await self._product(cause)
            product_id, plans = await self._billing.sync_product(product)
            return StepOutcome(
                "product",
                product.sku,
                {
                    "sku": product.sku,
                    "catalog_version": product.catalog_version,
                    "billing_product_id": product_id,
                    "plan_ids": plans,
                    "active": product.active,
                },
            )

        await self._run.run(
            cause,
            kind="product.synced.billing",
            step="billing.product.sync",
            target="billing",
            action=action,
        )

    async def probe(self, dead_letter: Event) -> bool | None:
        """A sync rewrites the same values: replaying it is always safe, nothing to probe."""
        return None


_Reaction = Callable[[CatalogSync, Event], Awaitable[None]]
_REACTIONS: dict[str, tuple[_Reaction, ...]] = {
    CHANGE_KIND: (CatalogSync._sync_crm, CatalogSync._sync_billing),
}
SPEC = FlowSpec(
    name="product-catalog",
    steps=STEPS,
    trigger_kinds=frozenset(_REACTIONS),
    entry_steps={CHANGE_STEP: CHANGE_KIND},
    payload_models={"product": Product},
    group="catalog",
    rule_files=(Path(__file__).with_name("catalog.yaml"),),
)

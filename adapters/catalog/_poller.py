"""Catalog changes as events: a ``write_date`` poll of the ERP's products and prices.

Each product written (its product, template or a catalog price line) becomes one
``catalog.product.changed`` event, its own business transaction: the correlation ID is
the product and its catalog version (the ERP's last write), so a re-read within the
overlap or after a restart is the same transaction and the lineage dedupes it by its
idempotency key. The position lives in the shared poll positions, written after the
events are published.

A price version that comes into force on a later day changes what the CRM shows without
any write in the ERP that day, so the poll also looks, once a day, for versions that
started since its last look and announces their products again (the key carries the day).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from collector import Bus
from tracing import (
    Event,
    InterlockError,
    Status,
    System,
    correlation_id_for,
    current_trace_context,
    tracer,
)

from .._canonical import Product
from .._positions import PositionStore, TimeCursor
from ._flow import CHANGE_KIND, CHANGE_STEP

__all__ = ["CatalogFeed", "CatalogPoller"]

log = logging.getLogger(__name__)


class CatalogFeed(Protocol):
    async def changes(self, since: datetime) -> list[tuple[str, datetime]]: ...
    async def products(self, skus: list[str] | None = None) -> dict[str, Product]: ...
    async def starting(self, after: date, until: date) -> list[str]: ...


class CatalogPoller:
    """Polls ``catalog.changes`` and publishes ``catalog.product.changed`` events."""

    def __init__(
        self,
        catalog: CatalogFeed,
        bus: Bus,
        *,
        interval: float = 10.0,
        since: datetime | None = None,
        overlap: timedelta = timedelta(seconds=5),
        positions: PositionStore | None = None,
        name: str = "erp.catalog",
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._catalog = catalog
        self._bus = bus
        self._interval = interval
        self._positions = positions or PositionStore(None)
        self._name = name
        self._cursor = TimeCursor.from_json(
            self._positions.get(name),
            default_at=since or datetime.now(UTC) - timedelta(minutes=5),
            overlap=overlap,
        )
        self._today = today
        day = (self._positions.get(name + ".in_force") or {}).get("day")
        #: The last day whose starting versions were announced.
        self._day = date.fromisoformat(day) if day else today()
        self._task: asyncio.Task[None] | None = None
        self.errors = 0

    async def poll_once(self) -> list[Event]:
        published = await self._poll_writes()
        today = self._today()
        if today > self._day:
            skus = await self._catalog.starting(self._day, today)
            products = await self._catalog.products(skus) if skus else {}
            for sku in skus:
                if sku in products:
                    event = self._event(products[sku], datetime.now(UTC), in_force=today)
                    await self._bus.publish(event)
                    published.append(event)
            self._day = today
            await self._positions.put(self._name + ".in_force", {"day": today.isoformat()})
        return published

    async def _poll_writes(self) -> list[Event]:
        changes = await self._catalog.changes(self._cursor.read_from)
        fresh = [(sku, at) for sku, at in changes if self._cursor.fresh(f"{sku}@{at.isoformat()}")]
        if not fresh:
            return []
        products = await self._catalog.products(sorted({sku for sku, _ in fresh}))
        published: list[Event] = []
        announced: set[str] = set()
        for sku, written in fresh:
            product = products.get(sku)
            if product is not None and sku not in announced:
                event = self._event(product, written)
                await self._bus.publish(event)
                published.append(event)
                announced.add(sku)
            self._cursor.advance(f"{sku}@{written.isoformat()}", written)
        self._cursor.prune()
        await self._positions.put(self._name, self._cursor.to_json())
        return published

    @staticmethod
    def _event(product: Product, written: datetime, *, in_force: date | None = None) -> Event:
        with tracer().start_as_current_span(
            f"receive {CHANGE_KIND}", attributes={"interlock.sku": product.sku}
        ) as span:
            trace = current_trace_context(span)
        key = f"{product.sku}@{product.catalog_version}"
        if in_force is not None:  # the same version, announced again on the day it starts
            key += f"@in-force-{in_force.isoformat()}"
        return Event(
            correlation_id=correlation_id_for("erp", "product", key),
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trace_flags=trace.trace_flags,
            tracestate=trace.tracestate,
            idempotency_key=f"erp:product:{key}",
            source=System.ERP,
            target=System.INTERLOCK,
            kind=CHANGE_KIND,
            step=CHANGE_STEP,
            entity_type="product",
            entity_id=product.sku,
            event_time=written,
            status=Status.OK,
            payload={
                "sku": product.sku,
                "product": product.model_dump(mode="json"),
            },
        )

    async def run(self) -> None:
        """Poll until cancelled; an ERP outage is logged and retried next tick."""
        while True:
            try:
                await self.poll_once()
            except InterlockError as exc:
                self.errors += 1
                log.warning("ERP catalog poll failed: %s: %s", type(exc).__name__, exc.message)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="erp-catalog-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

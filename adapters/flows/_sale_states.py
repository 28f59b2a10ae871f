"""The ERP's sale-state changes as events: a ``write_date`` poll of Tryton's sales.

Quote-to-cash sees the sale only while it moves it (create, confirm); Tryton then
processes, finishes or cancels it on its own. This poll turns each new state of a sale
that came from the CRM (its ``reference`` is the opportunity ID) into one
``order.state_changed`` event under the order's correlation ID, which the flow publishes
to the opportunity (``crm.order.status``).

Reads overlap by ``overlap`` (Tryton stamps the transaction's start); a sale's state is
published once per state seen, and a repeat after a restart only rewrites the same value
in the CRM. The position and the last state per sale live in the shared poll positions,
written after the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from collector import Bus
from tracing import Event, System, correlation_id_for

from .._polling import FeedPoller, ingress_event
from .._positions import PositionStore

__all__ = ["PUBLISHED_STATES", "SaleFeed", "SaleStatePoller"]

#: The sale states the CRM opportunity shows.
PUBLISHED_STATES = frozenset({"confirmed", "processing", "done", "cancelled"})


class SaleFeed(Protocol):
    async def sale_changes(self, since: datetime) -> list[tuple[Any, datetime]]: ...


class SaleStatePoller(FeedPoller[tuple[Any, datetime]]):
    """Polls ``erp.sale_changes`` and publishes ``order.state_changed`` events.

    The last state published per sale is kept in the poll positions under
    ``<name>.states``, so a restart's re-read does not publish a state twice.
    """

    def __init__(
        self,
        erp: SaleFeed,
        bus: Bus,
        *,
        interval: float = 5.0,
        since: datetime | None = None,
        overlap: timedelta = timedelta(seconds=5),
        positions: PositionStore | None = None,
        name: str = "erp.sale_states",
    ) -> None:
        super().__init__(
            positions=positions,
            name=name,
            since=since,
            overlap=overlap,
            interval=interval,
            label="erp-sale-state-poller",
            memory_name=f"{name}.states",
        )
        self._erp = erp
        self._bus = bus

    async def read(self, since: datetime) -> Iterable[tuple[Any, datetime]]:
        return await self._erp.sale_changes(since)

    def mark(self, item: tuple[Any, datetime]) -> tuple[str, datetime]:
        sale, written = item
        return f"{sale.id}@{written.isoformat()}", written

    async def handle(self, item: tuple[Any, datetime]) -> Event | None:
        sale, written = item
        # The last state published per sale: a rewrite without a new state is not news.
        if (
            not sale.reference
            or sale.state not in PUBLISHED_STATES
            or self.memory.get(str(sale.id)) == sale.state
        ):
            return None
        event = self._event(sale, written)
        await self._bus.publish(event)
        self.remember(str(sale.id), sale.state)
        return event

    @staticmethod
    def _event(sale: Any, written: datetime) -> Event:
        return ingress_event(
            kind="order.state_changed",
            step="erp.order.state",
            source=System.ERP,
            correlation_id=correlation_id_for("crm", "opportunity", sale.reference),
            idempotency_key=f"erp:sale:{sale.id}:{sale.state}",
            entity_type="sales_order",
            entity_id=sale.reference,
            event_time=written,
            span_attributes={"interlock.erp_sale_id": sale.id},
            payload={
                "order_ref": sale.reference,
                "erp_sale_id": sale.id,
                "erp_order_number": sale.number,
                "erp_state": sale.state,
            },
        )

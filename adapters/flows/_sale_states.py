"""The ERP's sale-state changes as events: a ``write_date`` poll of Tryton's sales.

Quote-to-cash sees the sale only while it moves it (create, confirm); Tryton then
processes, finishes or cancels it on its own. This poll turns each new state of a sale
that came from the CRM (its ``reference`` is the opportunity ID) into one
``order.state_changed`` event under the order's correlation ID, which the flow publishes
to the opportunity (``crm.order.status``).

Reads overlap by ``overlap`` (Tryton stamps the transaction's start); a sale's state is
published once per state seen, and a repeat after a restart only rewrites the same value
in the CRM. The position lives in the shared poll positions, written after the events.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

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

from .._positions import PositionStore, TimeCursor

__all__ = ["PUBLISHED_STATES", "SaleFeed", "SaleStatePoller"]

log = logging.getLogger(__name__)

#: The sale states the CRM opportunity shows.
PUBLISHED_STATES = frozenset({"confirmed", "processing", "done", "cancelled"})


class SaleFeed(Protocol):
    async def sale_changes(self, since: datetime) -> list[tuple[Any, datetime]]: ...


class SaleStatePoller:
    """Polls ``erp.sale_changes`` and publishes ``order.state_changed`` events."""

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
        self._erp = erp
        self._bus = bus
        self._interval = interval
        self._positions = positions or PositionStore(None)
        self._name = name
        self._cursor = TimeCursor.from_json(
            self._positions.get(name),
            default_at=since or datetime.now(UTC) - timedelta(minutes=5),
            overlap=overlap,
        )
        #: The last state published per sale: a rewrite without a new state is not news.
        self._states: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.errors = 0

    async def poll_once(self) -> list[Event]:
        published: list[Event] = []
        progressed = False
        try:
            for sale, written in await self._erp.sale_changes(self._cursor.read_from):
                mark = f"{sale.id}@{written.isoformat()}"
                if not self._cursor.fresh(mark):
                    continue
                if (
                    sale.reference
                    and sale.state in PUBLISHED_STATES
                    and self._states.get(sale.id) != sale.state
                ):
                    event = self._event(sale, written)
                    await self._bus.publish(event)
                    published.append(event)
                    self._states[sale.id] = sale.state
                self._cursor.advance(mark, written)
                progressed = True
        finally:
            if progressed:
                self._cursor.prune()
                await self._positions.put(self._name, self._cursor.to_json())
        return published

    @staticmethod
    def _event(sale: Any, written: datetime) -> Event:
        with tracer().start_as_current_span(
            "receive order.state_changed", attributes={"interlock.erp_sale_id": sale.id}
        ) as span:
            trace = current_trace_context(span)
        return Event(
            correlation_id=correlation_id_for("crm", "opportunity", sale.reference),
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trace_flags=trace.trace_flags,
            tracestate=trace.tracestate,
            idempotency_key=f"erp:sale:{sale.id}:{sale.state}",
            source=System.ERP,
            target=System.INTERLOCK,
            kind="order.state_changed",
            step="erp.order.state",
            entity_type="sales_order",
            entity_id=sale.reference,
            event_time=written,
            status=Status.OK,
            payload={
                "order_ref": sale.reference,
                "erp_sale_id": sale.id,
                "erp_order_number": sale.number,
                "erp_state": sale.state,
            },
        )

    async def run(self) -> None:
        """Poll until cancelled; an ERP outage is logged and retried next tick."""
        while True:
            try:
                await self.poll_once()
            except InterlockError as exc:
                self.errors += 1
                log.warning("ERP sale-state poll failed: %s: %s", type(exc).__name__, exc.message)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="erp-sale-state-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

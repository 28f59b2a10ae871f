"""The desk's ticket changes as events: a poll of the incremental ticket export.

Each change of a ticket the ``select`` predicate accepts (a feature's tag, say) becomes one
``ticket.changed`` event (step ``support.ticket.changed``, source ``support``) under the
correlation ID ``correlate(ticket)`` gives, so a feature built on the desk's tickets (invoice
disputes) files them under the invoice's or order's transaction. The position (the newest
``updated_at`` read, the (ticket, ``updated_at``) pairs inside the overlap) lives in the poll
positions like every feed's; a restart resumes there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from collector import Bus
from tracing import Event, System

from .._polling import FeedPoller, ingress_event
from .._positions import PositionStore

__all__ = ["TicketFeed", "TicketPoller"]

Ticket = tuple[dict[str, Any], datetime]


class TicketFeed(Protocol):
    """A desk that exports its tickets changed since a time (Zendesk's incremental
    export; ServiceNow would query by ``sys_updated_on``)."""

    async def ticket_changes(self, since: datetime) -> list[Ticket]: ...


class TicketPoller(FeedPoller[Ticket]):
    """Polls ``desk.ticket_changes`` and publishes ``ticket.changed`` for selected tickets."""

    def __init__(
        self,
        desk: TicketFeed,
        bus: Bus,
        *,
        select: Callable[[dict[str, Any]], bool],
        correlate: Callable[[dict[str, Any]], str],
        interval: float = 5.0,
        since: datetime | None = None,
        # The export's start_time is whole seconds.
        overlap: timedelta = timedelta(seconds=2),
        positions: PositionStore | None = None,
        name: str = "support.ticket_changes",
    ) -> None:
        super().__init__(
            positions=positions,
            name=name,
            since=since,
            overlap=overlap,
            interval=interval,
            label="support-ticket-poller",
        )
        self._desk = desk
        self._bus = bus
        self._select = select
        self._correlate = correlate

    async def read(self, since: datetime) -> Iterable[Ticket]:
        return await self._desk.ticket_changes(since)

    def mark(self, item: Ticket) -> tuple[str, datetime]:
        ticket, updated = item
        # ``updated_at`` is whole seconds: two changes within one second differ in content.
        digest = hashlib.sha256(
            json.dumps(ticket, sort_keys=True, default=str).encode()
        ).hexdigest()
        return f"{ticket['id']}@{updated.isoformat()}#{digest[:12]}", updated

    async def handle(self, item: Ticket) -> Event | None:
        ticket, updated = item
        if not self._select(ticket):
            return None
        ticket_id = str(ticket["id"])
        event = ingress_event(
            kind="ticket.changed",
            step="support.ticket.changed",
            source=System.SUPPORT,
            correlation_id=self._correlate(ticket),
            idempotency_key=f"support:ticket:{self.mark(item)[0]}",
            entity_type="ticket",
            entity_id=ticket_id,
            event_time=updated,
            span_attributes={"interlock.ticket_id": ticket_id},
            payload={
                "ticket_id": ticket_id,
                "status": ticket.get("status"),
                "tags": list(ticket.get("tags") or []),
                "subject": ticket.get("subject"),
                "organization_id": ticket.get("organization_id"),
                "external_id": ticket.get("external_id"),
            },
        )
        await self._bus.publish(event)
        return event

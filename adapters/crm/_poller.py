"""The CRM's ingress: the opportunity change-feed poller (closed-won deals)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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

from .._delivery import DeliveryLedger, publish_delivery
from .._positions import PositionStore, TimeCursor

__all__ = ["CrmPoller", "OpportunityChangeLike"]

log = logging.getLogger(__name__)


class OpportunityChangeLike(Protocol):
    @property
    def opportunity_id(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
    @property
    def account_name(self) -> str | None: ...
    @property
    def stage(self) -> str: ...
    @property
    def is_won(self) -> bool: ...
    @property
    def amount(self) -> Decimal | None: ...
    @property
    def currency(self) -> str | None: ...
    @property
    def modstamp(self) -> datetime: ...


class ChangeFeed(Protocol):
    async def opportunity_changes(self, since: datetime) -> Any: ...


@dataclass
class PollStats:
    polls: int = 0
    changes: int = 0
    published: int = 0
    duplicates: int = 0
    errors: int = 0
    last_success: datetime | None = None
    last_error: str | None = None


#: How many published won opportunities are remembered across restarts.
_WON_KEPT = 100_000


class CrmPoller:
    """Polls the CRM's change feed for opportunities that became Closed Won.

    Reads overlap by ``overlap`` so a change committed late within the same
    second is not missed; the overlap's re-reads are recognised by (ID, modstamp)
    and skipped silently, while a genuinely new delivery of the same closed-won
    deal (a new modstamp) is recorded as a duplicate.

    The position (the newest modstamp read, and the (ID, modstamp) pairs inside
    the overlap) lives in ``positions`` under ``name``; it is written after the
    poll's events are published, so a crash before that write re-reads them and
    never skips one. Without a stored position the feed is read from ``since``
    (default: five minutes ago).
    """

    def __init__(
        self,
        crm: ChangeFeed,
        bus: Bus,
        *,
        ledger: DeliveryLedger | None = None,
        interval: float = 2.0,
        since: datetime | None = None,
        overlap: timedelta = timedelta(seconds=2),
        positions: PositionStore | None = None,
        name: str = "crm.opportunity_changes",
    ) -> None:
        self._crm = crm
        self._bus = bus
        self._ledger = ledger or DeliveryLedger()
        self._interval = interval
        self._positions = positions or PositionStore(None)
        self._name = name
        # A fresh position is stored at the first read even if nothing came, so a restart
        # after an outage resumes there, not at its own start minus the look-back.
        self._stored = self._positions.get(name) is not None
        self._cursor = TimeCursor.from_json(
            self._positions.get(name),
            default_at=since or datetime.now(UTC) - timedelta(minutes=5),
            overlap=overlap,
        )
        # Won opportunities already published, kept across restarts: Interlock's own
        # write-backs (the ERP status on the opportunity) touch its SystemModstamp, so a
        # restart's re-read must still see the second delivery as a duplicate.
        kept = self._positions.get(self._won_name) or {}
        self._won: dict[str, None] = dict.fromkeys(kept.get("ids") or [])
        self._task: asyncio.Task[None] | None = None
        self.stats = PollStats()

    @property
    def _won_name(self) -> str:
        return f"{self._name}.won"

    @property
    def position(self) -> datetime:
        """The newest modstamp read and acknowledged so far."""
        return self._cursor.at

    async def poll_once(self) -> list[Event]:
        self.stats.polls += 1
        changes = await self._crm.opportunity_changes(self._cursor.read_from)
        published: list[Event] = []
        progressed = False
        won_changed = False
        try:
            for change in changes:
                self.stats.changes += 1
                mark = f"{change.opportunity_id}@{change.modstamp.isoformat()}"
                if not self._cursor.fresh(mark):
                    continue
                if change.is_won:
                    known = change.opportunity_id in self._won
                    event = await publish_delivery(
                        self._bus, self._ledger, self._event(change), known=known
                    )
                    if not known:
                        self._won[change.opportunity_id] = None
                        won_changed = True
                    published.append(event)
                    self.stats.published += 1
                    self.stats.duplicates += event.status == Status.DUPLICATE
                # Only once its event is published (acknowledged) does the change count as read.
                self._cursor.advance(mark, change.modstamp)
                progressed = True
        finally:
            if progressed or not self._stored:
                self._cursor.prune()
                await self._positions.put(self._name, self._cursor.to_json())
                self._stored = True
            if won_changed:
                while len(self._won) > _WON_KEPT:
                    del self._won[next(iter(self._won))]
                await self._positions.put(self._won_name, {"ids": list(self._won)})
        self.stats.last_success = datetime.now(UTC)
        return published

    def _event(self, change: OpportunityChangeLike) -> Event:
        with tracer().start_as_current_span(
            "receive opportunity.closed_won",
            attributes={"interlock.opportunity_id": change.opportunity_id},
        ) as span:
            trace = current_trace_context(span)
        return Event(
            correlation_id=correlation_id_for("crm", "opportunity", change.opportunity_id),
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trace_flags=trace.trace_flags,
            tracestate=trace.tracestate,
            idempotency_key=f"crm:opportunity:{change.opportunity_id}:closed_won",
            source=System.CRM,
            target=System.INTERLOCK,
            kind="opportunity.closed_won",
            step="crm.opportunity.closed_won",
            entity_type="opportunity",
            entity_id=change.opportunity_id,
            event_time=change.modstamp,
            amount=change.amount,
            currency=change.currency,
            customer_id=change.account_id,
            payload={
                "order_ref": change.opportunity_id,
                "stage": change.stage,
                "amount": str(change.amount) if change.amount is not None else None,
                "currency": change.currency,
                "account_id": change.account_id,
                "customer_name": change.account_name,
            },
        )

    async def run(self) -> None:
        """Poll until cancelled; an outage of the CRM is logged and retried next tick."""
        while True:
            try:
                await self.poll_once()
            except InterlockError as exc:
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc.message}"
                log.warning("CRM poll failed: %s", self.stats.last_error)
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="crm-poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

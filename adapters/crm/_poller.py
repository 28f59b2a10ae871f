"""The CRM's ingress: the opportunity change-feed poller (closed-won deals)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from collector import Bus
from tracing import Event, Status, System, correlation_id_for

from .._delivery import DeliveryLedger, publish_delivery
from .._polling import FeedPoller, ingress_event
from .._positions import PositionStore

__all__ = ["CrmPoller", "OpportunityChangeLike"]


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
    changes: int = 0
    published: int = 0
    duplicates: int = 0


#: How many published won opportunities are remembered across restarts.
_WON_KEPT = 100_000


class CrmPoller(FeedPoller[OpportunityChangeLike]):
    """Polls the CRM's change feed for opportunities that became Closed Won.

    Reads overlap by ``overlap`` so a change committed late within the same
    second is not missed; the overlap's re-reads are recognised by (ID, modstamp)
    and skipped silently, while a genuinely new delivery of the same closed-won
    deal (a new modstamp) is recorded as a duplicate.

    The position (the newest modstamp read, and the (ID, modstamp) pairs inside
    the overlap) lives in ``positions`` under ``name``; it is written after the
    poll's events are published, so a crash before that write re-reads them and
    never skips one. Without a stored position the feed is read from ``since``
    (default: five minutes ago). The won opportunities already published are kept
    under ``<name>.won``: Interlock's own write-backs (the ERP status on the
    opportunity) touch its SystemModstamp, so a restart's re-read must still see the
    second delivery as a duplicate.
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
        super().__init__(
            positions=positions,
            name=name,
            since=since,
            overlap=overlap,
            interval=interval,
            label="crm-poller",
            memory_name=f"{name}.won",
            memory_kept=_WON_KEPT,
        )
        self._crm = crm
        self._bus = bus
        self._ledger = ledger or DeliveryLedger()
        self.stats = PollStats()

    def _memory_from_json(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return dict.fromkeys(data.get("ids") or [])

    def _memory_to_json(self) -> dict[str, Any]:
        return {"ids": list(self.memory)}

    async def read(self, since: datetime) -> Iterable[OpportunityChangeLike]:
        changes: Iterable[OpportunityChangeLike] = await self._crm.opportunity_changes(since)
        return changes

    def mark(self, item: OpportunityChangeLike) -> tuple[str, datetime]:
        return f"{item.opportunity_id}@{item.modstamp.isoformat()}", item.modstamp

    async def handle(self, item: OpportunityChangeLike) -> Event | None:
        self.stats.changes += 1
        if not item.is_won:
            return None
        known = item.opportunity_id in self.memory
        event = await publish_delivery(self._bus, self._ledger, self._event(item), known=known)
        if not known:
            self.remember(item.opportunity_id)
        self.stats.published += 1
        self.stats.duplicates += event.status == Status.DUPLICATE
        return event

    @staticmethod
    def _event(change: OpportunityChangeLike) -> Event:
        return ingress_event(
            kind="opportunity.closed_won",
            step="crm.opportunity.closed_won",
            source=System.CRM,
            correlation_id=correlation_id_for("crm", "opportunity", change.opportunity_id),
            idempotency_key=f"crm:opportunity:{change.opportunity_id}:closed_won",
            entity_type="opportunity",
            entity_id=change.opportunity_id,
            event_time=change.modstamp,
            span_attributes={"interlock.opportunity_id": change.opportunity_id},
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

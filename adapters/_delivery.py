"""What every ingress shares: the delivery ledger that recognises repeat deliveries.

Every ingress (the CRM poller in ``adapters.crm``, the billing webhook in
``adapters.billing``) publishes a delivery through :func:`publish_delivery`: a repeat
of an idempotency key is recorded as a ``duplicate`` event (so the duplicate rate is
measured) and not acted on. The ledger is in memory and bounded; after a restart a
repeat is still caught by the targets' own idempotency (ERP sale by reference, and so on).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from collector import Bus, Host
from tracing import (
    Event,
    Status,
)

from ._positions import PositionStore, positions_path_for

__all__ = ["DeliveryLedger", "event_time", "ingress_state", "publish_delivery", "utcnow"]

log = logging.getLogger(__name__)


class DeliveryLedger:
    """Idempotency keys seen recently → the event that first carried them."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def first(self, key: str) -> str | None:
        return self._seen.get(key)

    def remember(self, key: str, event_id: str) -> None:
        self._seen[key] = event_id
        self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)


async def publish_delivery(
    bus: Bus, ledger: DeliveryLedger, event: Event, *, known: bool = False
) -> Event:
    """Publish ``event``, marked as a duplicate when its key was seen before.

    ``known``: the delivery itself was handled before (before a restart, so the
    in-memory ledger cannot say); it is a duplicate whatever the ledger says.
    """
    first = ledger.first(event.idempotency_key)
    if first is None and known:
        first = "an earlier delivery of the same billing event"
    if first is not None:
        event = event.model_copy(
            update={"status": Status.DUPLICATE, "payload": {**event.payload, "duplicate_of": first}}
        )
    else:
        ledger.remember(event.idempotency_key, event.event_id)
    await bus.publish(event)
    return event


def utcnow() -> datetime:
    return datetime.now(UTC)


def event_time(created: Any) -> datetime | None:
    """A unix ``created`` as a time, or ``None`` when it is not one a datetime can hold."""
    if not isinstance(created, int) or isinstance(created, bool):
        return None
    try:
        return datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):
        return None


#: Stripe event types that mean "this invoice is paid", mapped to our one kind.


def ingress_state(host: Host) -> tuple[DeliveryLedger, PositionStore]:
    """The delivery ledger and the poll positions the CRM and billing ingress share
    (positions live beside the lineage, so an outage of any length resumes)."""
    ledger = host.shared("ingress.ledger", DeliveryLedger)
    positions = host.shared(
        "ingress.positions",
        lambda: PositionStore(positions_path_for(host.settings.lineage.path)).load(),
    )
    return ledger, positions

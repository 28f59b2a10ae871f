"""Where business events enter: the CRM change-feed poller and the billing webhook.

Both recognise repeat deliveries by idempotency key and record them as
``duplicate`` events (so the duplicate rate is measured) without acting on them.
The ledger is in memory and bounded; after a restart a repeat is still caught by
the targets' own idempotency (ERP sale by reference, and so on).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from collector._bus import Bus
from tracing import (
    BusError,
    ErrorInfo,
    Event,
    InterlockError,
    Reason,
    Status,
    System,
    correlation_id_for,
    current_trace_ids,
    tracer,
)

__all__ = ["BillingWebhookIngress", "CrmPoller", "DeliveryLedger", "OpportunityChangeLike"]

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


async def _publish_delivery(bus: Bus, ledger: DeliveryLedger, event: Event) -> Event:
    """Publish ``event``, marked as a duplicate when its key was seen before."""
    first = ledger.first(event.idempotency_key)
    if first is not None:
        event = event.model_copy(
            update={"status": Status.DUPLICATE, "payload": {**event.payload, "duplicate_of": first}}
        )
    else:
        ledger.remember(event.idempotency_key, event.event_id)
    await bus.publish(event)
    return event


class OpportunityChangeLike(Protocol):
    @property
    def opportunity_id(self) -> str: ...
    @property
    def account_id(self) -> str | None: ...
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


class CrmPoller:
    """Polls the CRM's change feed for opportunities that became Closed Won.

    Reads overlap by ``overlap`` so a change committed late within the same
    second is not missed; the overlap's re-reads are recognised by (ID, modstamp)
    and skipped silently, while a genuinely new delivery of the same closed-won
    deal (a new modstamp) is recorded as a duplicate.
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
    ) -> None:
        self._crm = crm
        self._bus = bus
        self._ledger = ledger or DeliveryLedger()
        self._interval = interval
        self._since = since or datetime.now(UTC) - timedelta(minutes=5)
        self._overlap = overlap
        self._read: OrderedDict[tuple[str, datetime], None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.stats = PollStats()

    async def poll_once(self) -> list[Event]:
        self.stats.polls += 1
        changes = await self._crm.opportunity_changes(self._since - self._overlap)
        published: list[Event] = []
        for change in changes:
            self.stats.changes += 1
            mark = (change.opportunity_id, change.modstamp)
            if mark in self._read:
                continue
            self._read[mark] = None
            if len(self._read) > 50_000:
                self._read.popitem(last=False)
            self._since = max(self._since, change.modstamp)
            if change.is_won:
                event = await _publish_delivery(self._bus, self._ledger, self._event(change))
                published.append(event)
                self.stats.published += 1
                self.stats.duplicates += event.status == Status.DUPLICATE
        self.stats.last_success = datetime.now(UTC)
        return published

    def _event(self, change: OpportunityChangeLike) -> Event:
        with tracer().start_as_current_span(
            "receive opportunity.closed_won",
            attributes={"interlock.opportunity_id": change.opportunity_id},
        ) as span:
            trace_id, span_id = current_trace_ids(span)
        return Event(
            correlation_id=correlation_id_for("crm", "opportunity", change.opportunity_id),
            trace_id=trace_id,
            span_id=span_id,
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


#: Stripe event types that mean "this invoice is paid", mapped to our one kind.
_PAID_TYPES = frozenset({"invoice.paid", "invoice.payment_succeeded"})

InvoiceMapper = Callable[[dict[str, Any]], Any]
MetadataLookup = Callable[[str], Awaitable[dict[str, str]]]


class BillingWebhookIngress:
    """Turns verified billing webhooks into ``invoice.paid`` events, and rejected
    deliveries into ``webhook.rejected`` events, so both are in the lineage."""

    def __init__(
        self,
        bus: Bus,
        *,
        invoice_from_event: InvoiceMapper,
        subscription_metadata: MetadataLookup,
        event_metadata: Callable[[dict[str, Any]], Mapping[str, str]] | None = None,
        ledger: DeliveryLedger | None = None,
    ) -> None:
        self._bus = bus
        self._to_invoice = invoice_from_event
        self._metadata = subscription_metadata
        self._event_metadata = event_metadata or (lambda _: {})
        self._ledger = ledger or DeliveryLedger()
        self.ignored: dict[str, int] = {}
        self.rejected = 0

    async def on_event(self, stripe_event: dict[str, Any]) -> None:
        kind = str(stripe_event.get("type", ""))
        if kind not in _PAID_TYPES:
            # Billing sends many types we have no flow for: acknowledged and counted.
            self.ignored[kind] = self.ignored.get(kind, 0) + 1
            return
        try:
            invoice = self._to_invoice(stripe_event)
        except InterlockError as exc:
            # Verified but not ours to map: recorded as failed, acknowledged.
            await self.on_rejected("unmappable", f"{kind} {stripe_event.get('id')}: {exc.message}")
            return
        if invoice is None:
            self.ignored[kind] = self.ignored.get(kind, 0) + 1
            return
        # The invoice lines carry the subscription's metadata; billing's API is asked
        # only for what they lack, so a billing 429 storm does not lose the webhook.
        metadata = dict(self._event_metadata(stripe_event))
        order_ref = invoice.order_ref or metadata.get("order_ref")
        causation = metadata.get("interlock_event_id")
        if invoice.subscription_id and not (order_ref and causation):
            try:
                looked_up = await self._metadata(invoice.subscription_id)
            except InterlockError as exc:
                if not order_ref:
                    # Without the order the event cannot be placed: refuse it so the
                    # sender redelivers (503 with Retry-After), and record the refusal.
                    await self.on_rejected("billing_unavailable", f"{invoice.invoice_id}: {exc}")
                    raise BusError(f"cannot link invoice {invoice.invoice_id} yet: {exc}") from exc
                log.warning("invoice %s: causation unknown (%s)", invoice.invoice_id, exc)
                looked_up = {}
            order_ref = order_ref or looked_up.get("order_ref")
            causation = causation or looked_up.get("interlock_event_id")
        if not order_ref:
            log.warning("invoice %s belongs to no Interlock order; ignored", invoice.invoice_id)
            self.ignored["invoice.unlinked"] = self.ignored.get("invoice.unlinked", 0) + 1
            return
        created = stripe_event.get("created")
        when = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
        with tracer().start_as_current_span(
            "receive invoice.paid", attributes={"interlock.invoice_id": invoice.invoice_id}
        ) as span:
            trace_id, span_id = current_trace_ids(span)
        event = Event(
            correlation_id=correlation_id_for("crm", "opportunity", order_ref),
            causation_id=causation,
            trace_id=trace_id,
            span_id=span_id,
            idempotency_key=f"billing:invoice:{invoice.invoice_id}:paid",
            source=System.BILLING,
            target=System.INTERLOCK,
            kind="invoice.paid",
            step="billing.invoice.received",
            entity_type="invoice",
            entity_id=invoice.invoice_id,
            amount=invoice.amount_due,
            currency=invoice.currency,
            customer_id=invoice.customer_id or None,
            payload={
                "order_ref": order_ref,
                "stripe_event_id": stripe_event.get("id"),
                "stripe_event_type": kind,
                "subscription_id": invoice.subscription_id,
                "status": invoice.status,
                "amount_paid": str(invoice.amount_paid),
            },
            **({"event_time": when} if when else {}),
        )
        await _publish_delivery(self._bus, self._ledger, event)

    async def on_rejected(self, code: str, detail: str) -> None:
        self.rejected += 1
        digest = hashlib.sha256(f"{code}:{detail}:{datetime.now(UTC).isoformat()}".encode())
        delivery = digest.hexdigest()[:16]
        reason = {
            "unmappable": Reason.MAPPING,
            "billing_unavailable": Reason.DOWNSTREAM_UNAVAILABLE,
            "invalid_json": Reason.VALIDATION,
            "body_too_large": Reason.VALIDATION,
            "out_of_bounds": Reason.VALIDATION,
        }.get(code, Reason.AUTH)
        await self._bus.publish(
            Event(
                correlation_id=correlation_id_for("billing", "webhook", delivery),
                idempotency_key=f"billing:webhook:{delivery}",
                source=System.BILLING,
                target=System.INTERLOCK,
                kind="webhook.rejected",
                step="billing.webhook.verify",
                entity_type="webhook",
                entity_id=delivery,
                status=Status.FAILED,
                error=ErrorInfo(reason=reason, message=detail[:500], error_type=code),
                payload={"code": code},
            )
        )

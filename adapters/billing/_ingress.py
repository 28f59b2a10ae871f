"""Billing's ingress: signed paid-invoice webhooks and the events-API catch-up for
webhooks that never arrived."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError as PydanticValidationError

from collector import Bus
from tracing import (
    BusError,
    ErrorInfo,
    Event,
    InterlockError,
    Reason,
    Status,
    StoreError,
    System,
    ValidationError,
    correlation_id_for,
    current_trace_context,
    tracer,
)

from .._delivery import DeliveryLedger, event_time, publish_delivery, utcnow
from .._positions import PositionStore, TimeCursor

__all__ = ["BillingWebhookIngress"]

log = logging.getLogger(__name__)


_PAID_TYPES = frozenset({"invoice.paid", "invoice.payment_succeeded"})

InvoiceMapper = Callable[[dict[str, Any]], Any]
MetadataLookup = Callable[[str], Awaitable[dict[str, str]]]


class BillingEvents(Protocol):
    async def list_events(self, *, created_gte: int) -> list[dict[str, Any]]: ...


class BillingWebhookIngress:
    """Turns verified billing webhooks into ``invoice.paid`` events, and rejected
    deliveries into ``webhook.rejected`` events, so both are in the lineage.

    Billing events also arrive by :meth:`catch_up`, which reads the billing
    events API from the stored position (minus ``overlap``): events whose webhook
    never came (Interlock was down, the sender gave up) are handled then. Both
    paths are deduplicated by billing event ID: an ID handled before (also before
    a restart: the IDs inside the overlap are stored in ``positions``) is skipped
    by the catch-up and recorded as a ``duplicate`` when a webhook repeats it.
    ``parse_event`` (raising ``ValidationError`` with a ``code``) checks what the
    catch-up reads, as the webhook router checks what it receives.
    """

    def __init__(
        self,
        bus: Bus,
        *,
        invoice_from_event: InvoiceMapper,
        subscription_metadata: MetadataLookup,
        event_metadata: Callable[[dict[str, Any]], Mapping[str, str]] | None = None,
        ledger: DeliveryLedger | None = None,
        positions: PositionStore | None = None,
        parse_event: Callable[[dict[str, Any]], Any] | None = None,
        since: datetime | None = None,
        overlap: timedelta = timedelta(minutes=5),
        name: str = "billing.events",
    ) -> None:
        self._bus = bus
        self._to_invoice = invoice_from_event
        self._metadata = subscription_metadata
        self._event_metadata = event_metadata or (lambda _: {})
        self._ledger = ledger or DeliveryLedger()
        self._parse = parse_event or (lambda event: event)
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
        self.ignored: dict[str, int] = {}
        self.rejected = 0
        self.caught_up = 0
        self.catch_up_errors = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def position(self) -> datetime:
        """The newest billing event time the catch-up has read up to."""
        return self._cursor.at

    async def on_event(self, stripe_event: dict[str, Any]) -> None:
        """A verified webhook: handled, then its event ID remembered (durably)."""
        event_id = str(stripe_event.get("id", ""))
        known = bool(event_id) and not self._cursor.fresh(event_id)
        await self._handle(stripe_event, known=known)
        if event_id and not known:
            self._cursor.mark(event_id, event_time(stripe_event.get("created")) or utcnow())
            try:
                await self._positions.put(self._name, self._cursor.to_json())
            except StoreError as exc:
                # The event is published; an unwritten mark costs at most a re-read
                # (recognised by the ledger while this process runs), never a loss.
                log.warning("billing event %s: position not stored: %s", event_id, exc.message)

    async def catch_up(self, source: BillingEvents) -> int:
        """Handle the billing events since the stored position that were not handled yet.

        Returns how many were new. The position moves only past events that are
        handled (published, ignored or recorded as rejected) and is stored after
        each page of work, so a failure part-way resumes where it stopped.
        """
        created_gte = int(self._cursor.read_from.timestamp())
        events = await source.list_events(created_gte=created_gte)
        new = 0
        progressed = False
        try:
            for raw in events:
                event_id = str(raw.get("id", "")) if isinstance(raw, Mapping) else ""
                when = event_time(raw.get("created")) if isinstance(raw, Mapping) else None
                if not event_id or when is None or not self._cursor.fresh(event_id):
                    if event_id and when is not None:
                        self._cursor.advance(event_id, when)
                        progressed = True
                    continue
                try:
                    self._parse(raw)
                except ValidationError as exc:
                    code = str(getattr(exc, "code", "invalid_payload"))
                    await self.on_rejected(code, f"{raw.get('type')} {event_id}: {exc.message}")
                else:
                    await self._handle(dict(raw), known=False)
                new += 1
                self._cursor.advance(event_id, when)
                progressed = True
        finally:
            if progressed or not self._stored:
                self._cursor.prune()
                await self._positions.put(self._name, self._cursor.to_json())
                self._stored = True
        self.caught_up += new
        return new

    async def run_catch_up(self, source: BillingEvents, interval: float) -> None:
        """:meth:`catch_up` now and every ``interval`` seconds until cancelled.

        A failure (billing or the bus down) is counted and retried next tick.
        """
        while True:
            try:
                await self.catch_up(source)
            except InterlockError as exc:
                self.catch_up_errors += 1
                log.warning("billing catch-up failed: %s: %s", type(exc).__name__, exc.message)
            await asyncio.sleep(interval)

    async def start_catch_up(self, source: BillingEvents, interval: float) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                self.run_catch_up(source, interval), name="billing-catch-up"
            )

    async def stop(self) -> None:
        """Stop the catch-up task; safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _handle(self, stripe_event: dict[str, Any], *, known: bool) -> None:
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
        # Billing stamps its events in whole seconds, so its ``created`` can precede the
        # subscription step that caused the invoice by up to a second (a negative latency
        # and "paid" before "subscription" in the lineage). The event's time is when
        # Interlock received it; billing's own time stays in the payload.
        created = stripe_event.get("created")
        billed_at = (
            datetime.fromtimestamp(created, UTC).isoformat() if isinstance(created, int) else None
        )
        try:
            event = self._paid_event(stripe_event, invoice, order_ref, causation, billed_at)
        except PydanticValidationError as exc:
            # A value the envelope refuses (out of its bounds): the caller answers 400.
            first = exc.errors(include_url=False, include_input=False)[0]
            raise ValidationError(
                f"invoice {invoice.invoice_id} breaks the event envelope: "
                f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
                system="billing",
            ) from exc
        await publish_delivery(self._bus, self._ledger, event, known=known)

    def _paid_event(
        self,
        stripe_event: dict[str, Any],
        invoice: Any,
        order_ref: str,
        causation: str | None,
        billed_at: str | None,
    ) -> Event:
        kind = str(stripe_event.get("type", ""))
        with tracer().start_as_current_span(
            "receive invoice.paid", attributes={"interlock.invoice_id": invoice.invoice_id}
        ) as span:
            # A child of the caller's span when the webhook carried trace context
            # (the router makes it current), so its flags and tracestate go on.
            trace = current_trace_context(span)
        return Event(
            correlation_id=correlation_id_for("crm", "opportunity", order_ref),
            causation_id=causation,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trace_flags=trace.trace_flags,
            tracestate=trace.tracestate,
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
                "billed_at": billed_at,
            },
        )

    async def on_rejected(self, code: str, detail: str) -> None:
        self.rejected += 1
        digest = hashlib.sha256(f"{code}:{detail}:{datetime.now(UTC).isoformat()}".encode())
        delivery = digest.hexdigest()[:16]
        reason = {
            "unmappable": Reason.MAPPING,
            "billing_unavailable": Reason.DOWNSTREAM_UNAVAILABLE,
            "invalid_json": Reason.VALIDATION,
            "invalid_payload": Reason.VALIDATION,
            "unprocessable": Reason.VALIDATION,
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

"""Builders of dead-lettered order creations and the principals of the replay tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from adapters._canonical import Customer, OrderLine, SalesOrder
from collector import EmbeddedBus, Principal, Role
from collector.lineage import AsyncLineage
from tracing import ErrorInfo, Event, Reason, Status, System, correlation_id_for

OPERATOR = Principal("olga", Role.OPERATOR)
OPERATOR_2 = Principal("oscar", Role.OPERATOR)
APPROVER = Principal("anna", Role.APPROVER)
APPROVER_2 = Principal("arne", Role.APPROVER)
ADMIN = Principal("ada", Role.ADMIN)
VIEWER = Principal("vic", Role.VIEWER)


def make_order(sku: str = "PLAT-PRO", *, quantity: str = "2", price: str = "199") -> SalesOrder:
    return SalesOrder(
        order_ref="006" + uuid.uuid4().hex[:15],
        customer=Customer(
            customer_id="001" + uuid.uuid4().hex[:15], name="Acme Corp", email="ap@acme.test"
        ),
        currency="USD",
        lines=[OrderLine(sku=sku, quantity=Decimal(quantity), unit_price=Decimal(price))],
    )


def failed_order(
    order: SalesOrder | None = None,
    *,
    step: str = "erp.order.create",
    kind: str = "order.created",
    target: System = System.ERP,
    reason: Reason = Reason.DOWNSTREAM_UNAVAILABLE,
    at: datetime | None = None,
) -> tuple[Event, Event]:
    """The trigger (opportunity closed-won) and the dead-lettered step it caused."""
    order = order or make_order()
    at = at or datetime.now(UTC) - timedelta(minutes=5)
    ref = order.order_ref
    cid = correlation_id_for("crm", "opportunity", ref)
    trigger = Event(
        correlation_id=cid,
        idempotency_key=f"crm:opportunity:{ref}:closed_won",
        source=System.CRM,
        target=System.INTERLOCK,
        kind="opportunity.closed_won",
        step="crm.opportunity.closed_won",
        entity_type="opportunity",
        entity_id=ref,
        event_time=at,
        amount=order.total,
        currency=order.currency,
        customer_id=order.customer.customer_id,
        payload={"order_ref": ref, "order": order.model_dump(mode="json")},
    )
    dead = Event(
        correlation_id=cid,
        causation_id=trigger.event_id,
        idempotency_key=f"{step}:{ref}",
        source=System.INTERLOCK,
        target=target,
        kind=kind,
        step=step,
        entity_type="sales_order",
        entity_id=ref,
        status=Status.DEAD_LETTERED,
        attempt=5,
        event_time=at + timedelta(seconds=3),
        amount=order.total,
        currency=order.currency,
        customer_id=order.customer.customer_id,
        error=ErrorInfo(reason=reason, message="the ERP timed out", retriable=True),
        payload={"input_event": trigger.event_id, "input_kind": trigger.kind},
    )
    return trigger, dead


def outcome_for(replayed: Event, dead: Event, *, ok: bool, message: str = "") -> Event:
    """The step outcome a flow emits after handling a replayed input."""
    return Event(
        correlation_id=replayed.correlation_id,
        causation_id=replayed.event_id,
        idempotency_key=dead.idempotency_key,
        source=System.INTERLOCK,
        target=dead.target,
        kind=dead.kind,
        step=dead.step,
        entity_type=dead.entity_type,
        entity_id=dead.entity_id,
        status=Status.OK if ok else Status.DEAD_LETTERED,
        amount=dead.amount,
        currency=dead.currency,
        customer_id=dead.customer_id,
        error=None if ok else ErrorInfo(reason=Reason.DOWNSTREAM_UNAVAILABLE, message=message),
        replay_id=replayed.replay_id,
    )


async def seed(lineage: AsyncLineage, *pairs: tuple[Event, Event]) -> None:
    await lineage.write_batch([event for pair in pairs for event in pair])


def auto_outcomes(bus: EmbeddedBus, *, ok: bool = True, group: str = "flow") -> list[Event]:
    """Subscribe a stand-in flow that answers every replayed input with an outcome."""
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        if event.status is not Status.REPLAYED:
            return
        seen.append(event)
        dead_stub = Event(
            correlation_id=event.correlation_id,
            idempotency_key=event.idempotency_key,
            source=System.INTERLOCK,
            target=System.ERP,
            kind="order.created",
            step="erp.order.create",
            entity_type="sales_order",
            entity_id=event.entity_id,
            amount=event.amount,
            currency=event.currency,
            customer_id=event.customer_id,
        )
        await bus.publish(outcome_for(event, dead_stub, ok=ok, message="still down"))

    bus.subscribe(group, handle, kinds=frozenset({"opportunity.closed_won"}))
    return seen

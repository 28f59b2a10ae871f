"""Re-sync a closed-won deal Interlock never saw, from the CRM that owns it.

The deal is read again from the CRM (validated as quote-to-cash validates it) and
enters the lineage as the trigger the CRM poller would have published, marked as
from reconciliation, *held*: the trigger is recorded (status ``failed``: "not acted
on") and the flow's first step is a dead letter caused by it. Nothing is created in
any system here. Starting the flow is a replay of that dead letter, through replay's
guards: a dry run, four eyes (the step moves money), the audit trail.

    re-read the deal ──▶ opportunity.closed_won (held) ──▶ erp.order.create dead letter
                                                                   │
                       POST /api/v1/replays {"selection": {"event_id": …}} ◀──┘
                       (dry run, request, a second person approves, re-delivered)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from adapters._canonical import SalesOrder
from tracing import ErrorInfo, Event, Reason, Status, System

from ._compare import deal_correlation_id
from ._model import Check

__all__ = ["DEAL_CHECKS", "DealSource", "held_trigger"]

#: The checks whose record the CRM owns: a won deal with something missing downstream.
DEAL_CHECKS = frozenset(
    {Check.DEAL_TO_SALE.value, Check.DEAL_TO_SUBSCRIPTION.value, Check.DEAL_TO_ENTITLEMENT.value}
)
#: What the synthetic trigger's payload says it came from.
ORIGIN = "reconciliation"


class DealSource(Protocol):
    """The CRM's side: one won deal as a canonical order (``CrmAdapter.load_order``)."""

    async def load_order(self, opportunity_id: str) -> SalesOrder: ...


def held_trigger(
    order: SalesOrder, item: dict[str, Any], *, first_step: str, first_kind: str, money: bool
) -> tuple[Event, Event]:
    """The held trigger for ``order`` and the dead letter of the flow's first step."""
    ref = order.order_ref
    cid = deal_correlation_id(ref)
    amount = sum((line.amount for line in order.lines), Decimal(0))
    note = (
        f"never received by Interlock: re-read from the CRM by reconciliation run "
        f"{item['run_id']} ({item['check']}, discrepancy {item['discrepancy_id']})"
    )
    trigger = Event(
        correlation_id=cid,
        # The poller's key: the same receipt, had it arrived.
        idempotency_key=f"crm:opportunity:{ref}:closed_won",
        source=System.CRM,
        target=System.INTERLOCK,
        kind="opportunity.closed_won",
        step="crm.opportunity.closed_won",
        entity_type="opportunity",
        entity_id=ref,
        status=Status.FAILED,
        amount=amount,
        currency=order.currency,
        customer_id=order.customer.customer_id,
        payload={
            "order_ref": ref,
            "stage": "Closed Won",
            "amount": str(amount),
            "currency": order.currency,
            "account_id": order.customer.customer_id,
            "customer_name": order.customer.name,
            "origin": ORIGIN,
            "reconciliation_run": item["run_id"],
            "discrepancy_id": item["discrepancy_id"],
        },
        error=ErrorInfo(
            reason=Reason.UNKNOWN,
            message=f"{note}; held until a replay starts quote-to-cash",
            error_type="held_for_replay",
        ),
    )
    letter = Event(
        correlation_id=cid,
        causation_id=trigger.event_id,
        idempotency_key=f"{first_step}:{ref}",
        source=System.INTERLOCK,
        target=System.ERP,
        kind=first_kind,
        step=first_step,
        entity_type="sales_order",
        entity_id=ref,
        status=Status.DEAD_LETTERED,
        amount=amount,
        currency=order.currency,
        customer_id=order.customer.customer_id,
        payload={"order_ref": ref, "origin": ORIGIN, "money": money},
        error=ErrorInfo(
            reason=Reason.UNKNOWN,
            message=f"{note}; replay this dead letter to start quote-to-cash",
            error_type="never_received",
        ),
    )
    return trigger, letter

"""The events the dashboard tests seed a real host's lineage with.

``Chain`` builds one transaction's ``tracing.Event`` envelopes, each caused by the
previous one unless told; ``sample_events()`` is the sample lineage of the page tests:
three transactions on 2026-11-26 (so the unfinished one reads *stalled* on a host that
knows quote-to-cash's step table), one completed across every system, one dead-lettered
at the ERP after a retry, one waiting at the ERP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tracing import ErrorInfo, Event, Reason, Status, System

T0 = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)

#: The sample's transactions, and the customer each one names.
DONE, DEAD, OPEN = "cid-done-001", "cid-dead-002", "cid-open-003"
CUSTOMERS = {DONE: "Acme GmbH", DEAD: "Globex Ltd", OPEN: "Initech SA"}


class Chain:
    """Builds one transaction's events, each caused by the previous one unless told."""

    def __init__(self, cid: str, customer_id: str, amount: str, start: datetime) -> None:
        self.cid, self.customer_id, self.amount = cid, customer_id, Decimal(amount)
        self.now = start
        self.events: list[Event] = []
        self.n = 0

    def add(
        self,
        after_s: float,
        source: System,
        target: System | None,
        kind: str,
        step: str,
        *,
        status: Status = Status.OK,
        attempt: int = 1,
        error: ErrorInfo | None = None,
        cause: Event | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event:
        self.now += timedelta(seconds=after_s)
        self.n += 1
        parent = cause or (self.events[-1] if self.events else None)
        event = Event(
            event_id=f"{self.cid}-e{self.n:02d}",
            correlation_id=self.cid,
            causation_id=parent.event_id if parent else None,
            trace_id=f"{self.n:032x}",
            span_id=f"{self.n:016x}",
            idempotency_key=f"{self.cid}:{step}:{attempt}",
            source=source,
            target=target,
            kind=kind,
            step=step,
            entity_type=kind.split(".")[0],
            entity_id=f"{kind.split('.')[0]}-{self.cid[-3:]}",
            status=status,
            attempt=attempt,
            event_time=self.now,
            recorded_at=self.now + timedelta(milliseconds=40),
            duration_ms=120.0,
            amount=self.amount,
            currency="EUR",
            customer_id=self.customer_id,
            payload=payload or {"email": "j***@example.com", "amount": str(self.amount)},
            error=error,
        )
        self.events.append(event)
        return event

    def won(self) -> Event:
        """The CRM's closed-won opportunity that starts quote-to-cash, naming the customer."""
        payload = {
            "email": "j***@example.com",
            "amount": str(self.amount),
            "customer_name": CUSTOMERS.get(self.cid, f"Customer {self.customer_id}"),
        }
        return self.add(
            0, System.CRM, System.INTERLOCK, "opportunity.closed_won", "crm.closed_won",
            payload=payload,
        )  # fmt: skip


def sample_events() -> list[Event]:
    """Three transactions (12 events): completed, dead-lettered at the ERP, waiting."""
    erp, billing, support, il = System.ERP, System.BILLING, System.SUPPORT, System.INTERLOCK

    done = Chain(DONE, "C-100", "1250.00", T0)
    won = done.won()
    done.add(0.8, il, erp, "order.created", "erp.create_order")
    done.add(30, erp, il, "invoice.posted", "erp.post_invoice")
    done.add(2, il, billing, "subscription.created", "billing.create_subscription")
    done.add(3600, billing, il, "invoice.paid", "billing.invoice_paid")
    done.add(1, il, support, "case.enriched", "support.enrich_case", cause=won)

    dead = Chain(DEAD, "C-200", "98000.00", T0 + timedelta(minutes=5))
    dead.won()
    down = ErrorInfo(
        reason=Reason.DOWNSTREAM_UNAVAILABLE,
        message="ERP answered 503",
        retriable=True,
        status_code=503,
        error_type="DownstreamUnavailable",
    )
    hold = ErrorInfo(
        reason=Reason.CONFLICT,
        message="credit limit exceeded",
        retriable=False,
        status_code=200,
        error_type="ConflictError",
    )
    dead.add(1, il, erp, "order.created", "erp.create_order", status=Status.RETRYING, error=down)
    dead.add(
        4, il, erp, "order.created", "erp.create_order", status=Status.FAILED, attempt=2, error=hold
    )
    dead.add(
        0.1,
        il,
        il,
        "order.dead_lettered",
        "erp.create_order",
        status=Status.DEAD_LETTERED,
        attempt=2,
        error=hold,
    )

    waiting = Chain(OPEN, "C-300", "430.50", T0 + timedelta(minutes=9))
    waiting.won()
    waiting.add(0.5, il, erp, "order.created", "erp.create_order")
    return [*done.events, *dead.events, *waiting.events]

"""Event factories shared by the collector tests (fixed IDs and times, so JSON is exact)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tracing import ErrorInfo, Event, Reason, Status, System

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def eid(n: int) -> str:
    """A fixed, sortable event ID."""
    return f"00000000-0000-7000-8000-{n:012d}"


def make_event(
    correlation_id: str = "corr-1",
    *,
    n: int | None = None,
    seconds: float = 0.0,
    kind: str = "order.created",
    step: str = "erp.create_order",
    status: Status = Status.OK,
    source: System = System.ERP,
    target: System | None = None,
    entity_type: str = "sales_order",
    entity_id: str = "SO-1",
    amount: str | None = None,
    currency: str | None = None,
    customer_id: str | None = None,
    payload: dict[str, Any] | None = None,
    causation_id: str | None = None,
    reason: Reason | None = None,
    duration_ms: float | None = None,
    attempt: int = 1,
) -> Event:
    number = n if n is not None else next(_ids) + 1_000_000
    error = None
    if reason is not None or status in (Status.FAILED, Status.DEAD_LETTERED):
        error = ErrorInfo(
            reason=reason or Reason.UNKNOWN,
            message="credit limit exceeded",
            retriable=False,
            status_code=409,
            error_type="ConflictError",
        )
    at = T0 + timedelta(seconds=seconds)
    return Event(
        event_id=eid(number),
        correlation_id=correlation_id,
        causation_id=causation_id,
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1",
        idempotency_key=f"idem-{number}",
        source=source,
        target=target,
        kind=kind,
        step=step,
        entity_type=entity_type,
        entity_id=entity_id,
        status=status,
        attempt=attempt,
        event_time=at,
        recorded_at=at,
        duration_ms=duration_ms,
        amount=None if amount is None else Decimal(amount),
        currency=currency,
        customer_id=customer_id,
        payload=payload or {},
        error=error,
    )

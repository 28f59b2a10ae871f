"""Releasing credit holds: a poll that notices a raised limit, and the event an
approved override publishes.

The lineage is the list of held orders (``state=on_hold``) and keeps, on each
hold event, the party and the limit the ERP refused against. The poll reads the
party's limit now; raised (or removed) since the hold, it publishes
``order.hold.recheck`` and the flow confirms again: confirmed, the holds are
lifted; still over, the order is held again at the new limit. The poll does not
second-guess Tryton's credit arithmetic: the ERP decides at the confirm.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from collector import Bus
from collector.lineage import AsyncLineage
from tracing import Event, Status, System, current_trace_context, start_step_span

from .._polling import PollLoop
from ._credit_hold import HOLD_KIND, OVERRIDE_KIND, OVERRIDE_STEP, RECHECK_KIND, RECHECK_STEP

__all__ = ["CreditFeed", "CreditReleaser", "held_order", "override_event", "release_event"]


class CreditFeed(Protocol):
    async def credit_position(self, party_id: int) -> tuple[Decimal, Decimal | None]: ...


def held_order(transaction: dict[str, Any]) -> Event | None:
    """The hold event of a held transaction (from ``get_transaction``), or ``None``
    when a recheck or override is already under way since that hold."""
    events = transaction.get("events") or []
    hold: dict[str, Any] | None = None
    for e in events:
        if e["status"] != "ok":
            continue
        if e["kind"] == HOLD_KIND:
            hold = e
        elif e["kind"] in (RECHECK_KIND, OVERRIDE_KIND) and hold is not None:
            hold = None  # a release attempt follows this hold: wait for its outcome
    if hold is None:
        return None
    # The API's event JSON adds read-side fields (``since_cause_ms``) to the envelope's.
    return Event.model_validate({k: v for k, v in hold.items() if k in Event.model_fields})


def release_event(
    hold: Event, *, kind: str = RECHECK_KIND, step: str = RECHECK_STEP, released_by: str
) -> Event:
    """The event that makes the flow confirm a held order again, under its
    correlation ID, caused by the hold and in its trace."""
    with start_step_span(
        step,
        parent_traceparent=hold.traceparent,
        parent_tracestate=hold.tracestate,
        attributes={"interlock.step": step, "interlock.correlation_id": hold.correlation_id},
    ) as span:
        trace = current_trace_context(span)
    carried = {k: hold.payload[k] for k in ("order_ref", "erp_sale_id") if k in hold.payload}
    return Event(
        correlation_id=hold.correlation_id,
        causation_id=hold.event_id,
        trace_id=trace.trace_id,
        span_id=trace.span_id,
        trace_flags=trace.trace_flags,
        tracestate=trace.tracestate,
        idempotency_key=f"{step}:{hold.event_id}",
        source=System.ERP if step == RECHECK_STEP else System.INTERLOCK,
        target=System.INTERLOCK,
        kind=kind,
        step=step,
        entity_type=hold.entity_type,
        entity_id=hold.entity_id,
        status=Status.OK,
        amount=hold.amount,
        currency=hold.currency,
        customer_id=hold.customer_id,
        payload={**carried, "released_by": released_by, "hold_event": hold.event_id},
    )


def override_event(hold: Event, *, requested_by: str, approved_by: str) -> Event:
    """The event an approved override publishes (``released_by`` names both people)."""
    return release_event(
        hold,
        kind=OVERRIDE_KIND,
        step=OVERRIDE_STEP,
        released_by=f"override by {requested_by}, approved by {approved_by}",
    )


class CreditReleaser(PollLoop):
    """Polls the held orders' parties; a raised limit publishes a recheck.

    Its position is the lineage itself (the held transactions), so it is a plain
    :class:`PollLoop` with no stored feed position.
    """

    def __init__(
        self, erp: CreditFeed, bus: Bus, lineage: AsyncLineage, *, interval: float = 30.0
    ) -> None:
        super().__init__(interval=interval, label="credit-hold-releaser")
        self._erp = erp
        self._bus = bus
        self._lineage = lineage

    async def poll_once(self) -> list[Event]:
        published: list[Event] = []
        offset = 0
        while True:
            items, total = await self._lineage.list_transactions(
                state="on_hold", limit=200, offset=offset
            )
            for item in items:
                tx = await self._lineage.get_transaction(item["correlation_id"])
                hold = held_order(tx or {})
                if hold is None or not isinstance(hold.payload.get("party_id"), int):
                    continue
                _, limit = await self._erp.credit_position(int(hold.payload["party_id"]))
                then = hold.payload.get("limit")
                if limit is None or (then is not None and limit > Decimal(str(then))):
                    event = release_event(hold, released_by="credit limit raised in the ERP")
                    await self._bus.publish(event)
                    published.append(event)
            offset += len(items)
            if not items or offset >= total:
                return published

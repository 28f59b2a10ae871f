"""A finance override of a credit hold, under four eyes, in the control API.

    POST /api/v1/holds/{correlation_id}/override           an operator requests it
    POST /api/v1/holds/{correlation_id}/override/approve   a second person approves

The approver must not be the requester (a self-approval is refused with 403 and
audited as refused); every request and decision goes into replay's hash-chained
audit trail (``host.audit``). An approval publishes ``order.hold.override`` under
the order's correlation ID, and the flow confirms the sale acknowledging the ERP's
credit warning for that sale only (``TrytonAdapter.confirm_sale(override_credit=True)``);
the party's credit limit is not changed.

Pending requests are kept in memory: a restart drops them (the audit trail keeps
what was asked), and the operator asks again.

Errors (``InterlockError`` subclasses, answered as problem details)::

    HoldError
    ├── HoldNotFound            no held transaction with this ID (404)
    ├── OverrideNotRequested    approve before any request (409)
    └── SelfApprovalRefused     four eyes: the requester may not approve (403)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from collector import Bus, Principal, Role
from collector.api import ControlRoute, require_role
from collector.lineage import AsyncLineage
from tracing import InterlockError

from ._credit_release import held_order, override_event

__all__ = [
    "HoldError",
    "HoldNotFound",
    "OverrideNotRequested",
    "SelfApprovalRefused",
    "holds_router",
]

Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(require_role(Role.APPROVER))]
Audit = Callable[..., Awaitable[None]]


class HoldError(InterlockError):
    """A hold action cannot be done."""


class HoldNotFound(HoldError):
    """No held transaction with this correlation ID."""

    http_status = 404


class OverrideNotRequested(HoldError):
    """An approval with no pending override request."""

    http_status = 409


class SelfApprovalRefused(HoldError):
    """The four-eyes rule: the requester may not approve their own override."""

    http_status = 403


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why finance overrides")


@dataclass(frozen=True, slots=True)
class _Pending:
    requested_by: str
    reason: str
    at: datetime


def holds_router(lineage: AsyncLineage, bus: Bus, audit: Audit) -> APIRouter:
    """The override routes over the lineage (what is held), the bus and the audit trail."""
    router = APIRouter(prefix="/api/v1", tags=["holds"], route_class=ControlRoute)
    pending: dict[str, _Pending] = {}

    async def _hold(correlation_id: str) -> Any:
        tx = await lineage.get_transaction(correlation_id)
        hold = held_order(tx) if tx is not None and tx.get("state") == "on_hold" else None
        if hold is None:
            raise HoldNotFound(f"no credit hold awaiting release under {correlation_id}")
        return hold

    @router.post("/holds/{correlation_id}/override", status_code=202)
    async def request(principal: Operator, correlation_id: str, body: OverrideRequest) -> Response:
        hold = await _hold(correlation_id)
        pending[correlation_id] = _Pending(principal.name, body.reason, datetime.now(UTC))
        await audit(
            principal,
            "hold.override.request",
            correlation_id,
            why=body.reason,
            what={"order_ref": hold.payload.get("order_ref"), "amount": str(hold.amount)},
            outcome="requested",
        )
        return _json({"correlation_id": correlation_id, "state": "requested"}, 202)

    @router.post("/holds/{correlation_id}/override/approve")
    async def approve(principal: Approver, correlation_id: str) -> Response:
        hold = await _hold(correlation_id)
        asked = pending.get(correlation_id)
        if asked is None:
            raise OverrideNotRequested(f"no override was requested for {correlation_id}")
        what = {"order_ref": hold.payload.get("order_ref"), "requested_by": asked.requested_by}
        if asked.requested_by == principal.name:
            await audit(
                principal,
                "hold.override.approve",
                correlation_id,
                why="four eyes: the requester approving their own override",
                what=what,
                outcome="refused",
            )
            raise SelfApprovalRefused(
                f"{principal.name} requested this override and may not approve it"
            )
        del pending[correlation_id]
        event = override_event(hold, requested_by=asked.requested_by, approved_by=principal.name)
        await audit(
            principal,
            "hold.override.approve",
            correlation_id,
            why=asked.reason,
            what={**what, "event_id": event.event_id},
            outcome="approved",
        )
        await bus.publish(event)
        return _json(
            {"correlation_id": correlation_id, "state": "approved", "event_id": event.event_id},
            200,
        )

    return router


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")

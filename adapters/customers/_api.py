"""The customer master in the control API.

GET  /api/v1/customers                          golden records (viewer)
GET  /api/v1/customers/ownership                the ownership matrix (viewer)
GET  /api/v1/customers/{id}                     one record: IDs, changes, open items,
                                                transactions (viewer)
POST /api/v1/customers/{id}/sync                detect changes now (operator)
GET  /api/v1/change-requests                    changes, filter by kind and state
GET  /api/v1/change-requests/{id}               one change with its stages
POST /api/v1/change-requests/{id}/approve       approver; two different people
POST /api/v1/change-requests/{id}/reject        approver, with a reason
POST /api/v1/change-requests/{id}/retry         operator: a halted change, from its stage
GET  /api/v1/stewardship                        the stewardship queue (viewer)
POST /api/v1/stewardship/{id}/resolve           approver: which system's value wins
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from collector import Principal, Role
from collector.api import MAX_OFFSET, ControlRoute, require_role, responses
from collector.lineage import AsyncLineage

from ._service import CustomerMaster

__all__ = ["Rejection", "Resolution", "customers_router"]

Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Approver = Annotated[Principal, Depends(require_role(Role.APPROVER))]


class Rejection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: Literal["erp", "billing", "crm", "support"]
    reason: str = Field(min_length=1, max_length=2000)


def _out(value: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(value, default=str), status_code=status, media_type="application/json"
    )


def customers_router(master: CustomerMaster, lineage: AsyncLineage) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["customers"], route_class=ControlRoute)

    @router.get("/customers")
    async def list_customers(
        _: Viewer,
        q: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Golden records by name (PII masked), with their IDs in every system."""
        items, total = await master.records(limit=limit, offset=offset, q=q)
        return _out({"items": items, "total": total})

    @router.get("/customers/ownership")
    async def ownership(_: Viewer) -> Response:
        """Who owns which field, who consumes it, what is critical."""
        return _out({"version": master.matrix.version, "fields": master.matrix.as_table()})

    @router.get("/customers/{customer_id}", responses=responses(404))
    async def one(_: Viewer, customer_id: str) -> Response:
        """The golden record, its changes and open items, and its transactions."""
        record = await master.get(customer_id)
        transactions, _total = await lineage.list_transactions(q=customer_id, limit=50)
        record["transactions"] = transactions
        return _out(record)

    @router.post("/customers/{customer_id}/sync", responses=responses(404))
    async def sync(_: Operator, customer_id: str) -> Response:
        """Read the customer from every system now and act on what changed."""
        return _out(await master.sync(customer_id))

    @router.get("/change-requests")
    async def change_requests(
        _: Viewer,
        kind: Literal["change_request", "propagation", "stewardship"] | None = None,
        state: Literal["pending", "propagating", "done", "halted", "rejected"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Customer changes, newest first: change requests by default."""
        kinds = (kind,) if kind else ("change_request",)
        items, total = await master.changes(kinds=kinds, state=state, limit=limit, offset=offset)
        return _out({"items": items, "total": total})

    @router.get("/change-requests/{change_id}", responses=responses(404))
    async def change(_: Viewer, change_id: str) -> Response:
        """One change and its stages (where a halted one stopped)."""
        return _out(await master.change(change_id))

    @router.post("/change-requests/{change_id}/approve", responses=responses(403, 404, 409))
    async def approve(principal: Approver, change_id: str) -> Response:
        """One approval; the second, by another person, propagates in stages."""
        return _out(await master.approve(change_id, principal))

    @router.post("/change-requests/{change_id}/reject", responses=responses(404, 409))
    async def reject(principal: Approver, change_id: str, body: Rejection) -> Response:
        return _out(await master.reject(change_id, principal, body.reason))

    @router.post("/change-requests/{change_id}/retry", responses=responses(404, 409))
    async def retry(principal: Operator, change_id: str) -> Response:
        """Run a halted change again from the stage that failed."""
        return _out(await master.retry(change_id, principal))

    @router.get("/stewardship")
    async def stewardship(
        _: Viewer,
        state: Literal["pending", "propagating", "done", "halted"] | None = "pending",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Conflicts and consumers' edits waiting for a data steward."""
        items, total = await master.changes(
            kinds=("stewardship",), state=state, limit=limit, offset=offset
        )
        return _out({"items": items, "total": total})

    @router.post("/stewardship/{change_id}/resolve", responses=responses(404, 409))
    async def resolve(principal: Approver, change_id: str, body: Resolution) -> Response:
        """Decide which system's value is the customer's; later syncs keep it."""
        return _out(
            await master.resolve(change_id, principal, winner=body.winner, reason=body.reason)
        )

    return router

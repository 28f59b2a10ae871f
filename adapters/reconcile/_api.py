"""``/api/v1/reconciliations``: start a run (operator), list and read runs (viewer)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from collector import Principal, Role
from collector.api import MAX_OFFSET, ControlRoute, not_found, require_role, responses

from ._model import Kind, period_for
from ._service import Reconciler

__all__ = ["Explanation", "ReconciliationRequest", "reconcile_router"]

Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]


class ReconciliationRequest(BaseModel):
    """``POST /api/v1/reconciliations``: the period to compare (``from``/``to`` for custom)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period: Literal["day", "week", "month", "custom"] = "day"
    start: datetime | None = Field(None, alias="from")
    end: datetime | None = Field(None, alias="to")
    trigger: Literal["api", "cli"] = "api"


class Explanation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


def _out(value: Any, *, status: int = 200) -> Response:
    return Response(
        json.dumps(value, default=str), status_code=status, media_type="application/json"
    )


def reconcile_router(service: Reconciler) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["reconciliation"], route_class=ControlRoute)

    @router.post("/reconciliations", status_code=202)
    async def start(principal: Operator, body: ReconciliationRequest) -> Response:
        """Start a run over the period: it reads every system, so it answers at once
        (202) with the run's ID; follow it at ``/reconciliations/{run_id}``."""
        period = period_for(body.period, start=body.start, end=body.end)
        run_id = await service.request(period, trigger=body.trigger, by=principal)
        return _out(
            {
                "run_id": run_id,
                "status": "running",
                "period": period.name,
                "from": period.start.isoformat(),
                "to": period.end.isoformat(),
            },
            status=202,
        )

    @router.get("/reconciliations")
    async def runs(
        _: Viewer,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Runs, newest first, with their totals (discrepancies, value at risk by currency)."""
        items, total = await service.list(limit=limit, offset=offset)
        return _out({"items": items, "total": total})

    @router.get("/reconciliations/{run_id}", responses=not_found())
    async def run(
        _: Viewer, run_id: str, kind: Kind | None = None, system: str | None = None
    ) -> Response:
        """One run and its discrepancies, most money first (filter by ``kind``, ``system``)."""
        return _out(await service.get(run_id, kind=kind.value if kind else None, system=system))

    item = "/reconciliations/{run_id}/discrepancies/{discrepancy_id}"

    @router.post(item + "/explain", responses=responses(404))
    async def explain(
        principal: Operator, run_id: str, discrepancy_id: str, body: Explanation
    ) -> Response:
        """Mark a discrepancy explained, with the reason (audited); a later run that finds
        it again shows it explained and does not count it as open."""
        return _out(await service.explain(run_id, discrepancy_id, reason=body.reason, by=principal))

    @router.post(item + "/resync", responses=responses(404, 409))
    async def resync(
        principal: Operator, run_id: str, discrepancy_id: str, dry_run: bool = False
    ) -> Response:
        """Re-read the record from the system that owns it (audited); 409 when its repair
        is a replay (use ``replay_selection`` with ``POST /api/v1/replays``) or an
        explanation."""
        return _out(await service.resync(run_id, discrepancy_id, by=principal, dry_run=dry_run))

    return router

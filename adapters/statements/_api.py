"""``GET /api/v1/statements`` and ``GET /api/v1/statements/{batch_id}``: the batches.

Reads, so the viewer role (as every other read of the control API).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from collector import Principal, Role
from collector.api import MAX_OFFSET, ControlRoute, not_found, require_role
from tracing import NotFoundError

from ._models import Outcome
from ._store import BatchStore

__all__ = ["BatchPage", "BatchRecord", "statements_router"]

Viewer = Annotated[Principal, Depends(require_role(Role.VIEWER))]


class BatchSummary(BaseModel):
    """One file: its ID, checksum, line count and outcome."""

    model_config = ConfigDict(extra="allow")

    batch_id: str
    file_name: str
    checksum: str
    format: str | None
    outcome: Outcome
    received_at: str
    line_count: int
    reconciled: int
    dead_lettered: int
    amount: str | None
    currency: str | None
    reason: str | None
    duplicate_of: str | None
    erp_statements: list[int]


class BatchRecord(BatchSummary):
    """One file with each line's outcome, invoice, correlation ID and event."""

    lines: list[dict[str, Any]]


class BatchPage(BaseModel):
    items: list[BatchSummary]
    total: int


def statements_router(store: BatchStore) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["statements"], route_class=ControlRoute)

    @router.get("/statements", response_model=BatchPage)
    async def statements(
        _: Viewer,
        outcome: Outcome | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict[str, Any]:
        """Statement files, newest first (``outcome``: imported, duplicate, rejected)."""
        items, total = await store.list(
            outcome=outcome.value if outcome else None, limit=limit, offset=offset
        )
        return {"items": items, "total": total}

    @router.get("/statements/{batch_id}", response_model=BatchRecord, responses=not_found())
    async def statement(_: Viewer, batch_id: str) -> dict[str, Any]:
        """One statement file and its lines."""
        found = await store.get(batch_id)
        if found is None:
            raise NotFoundError(f"no statement batch {batch_id!r}")
        return found

    return router
